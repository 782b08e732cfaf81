"""Best-metric tracking and early stopping, both resumable from a checkpoint.

The previous system's early stopping was silently off (its launcher logged ``patience: 0``) and its best model could be
deleted by the per-epoch save; these objects hold the state that decides both, and save and restore it whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["min", "max"]


def is_improvement(value: float, best: float | None, mode: Mode, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``; nan never improves."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if min_delta < 0:
        raise ValueError(f"min_delta must be >= 0, got {min_delta}")
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class BestMetricTracker:
    """The best value of one metric and the epoch it came from (what a best-per-metric checkpoint needs)."""

    def __init__(self, name: str, mode: Mode, min_delta: float = 0.0):
        is_improvement(0.0, None, mode, min_delta)  # validates mode and min_delta at construction
        self.name = name
        self.mode = mode
        self.min_delta = min_delta
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def update(self, epoch: int, value: float) -> bool:
        """Record ``value`` for ``epoch``; True when it is the new best."""
        if not is_improvement(value, self.best_value, self.mode, self.min_delta):
            return False
        self.best_value = float(value)
        self.best_epoch = epoch
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["name"], state["mode"]) != (self.name, self.mode):
            raise ValueError(
                f"checkpoint tracks {state['name']!r} ({state['mode']}), this tracker {self.name!r} ({self.mode})"
            )
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]


def best_epoch_of(history: Iterable[tuple[int, float]], mode: Mode) -> int | None:
    """The epoch a :class:`BestMetricTracker` keeps for these ``(epoch, value)`` points: the first best one (what
    ``best.pt`` holds, read back from a run's logged history of its monitor); None when none counts."""
    tracker = BestMetricTracker("history", mode)
    for epoch, value in sorted(history):
        tracker.update(epoch, value)
    return tracker.best_epoch


@dataclass(frozen=True)
class EarlyStoppingDecision:
    improved: bool
    should_stop: bool
    epochs_without_improvement: int
    best_value: float | None
    best_epoch: int | None


class EarlyStopping:
    """Stop once the monitored metric has gone ``patience`` epochs without improving by more than ``min_delta``."""

    def __init__(self, mode: Mode, patience: int, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.best = BestMetricTracker("monitor", mode, min_delta)
        self.epochs_without_improvement = 0

    def update(self, epoch: int, value: float) -> EarlyStoppingDecision:
        improved = self.best.update(epoch, value)
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        return EarlyStoppingDecision(
            improved=improved,
            should_stop=self.epochs_without_improvement >= self.patience,
            epochs_without_improvement=self.epochs_without_improvement,
            best_value=self.best.best_value,
            best_epoch=self.best.best_epoch,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.state_dict(), "epochs_without_improvement": self.epochs_without_improvement}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.load_state_dict(state["best"])
        self.epochs_without_improvement = int(state["epochs_without_improvement"])


class PlateauAwareEarlyStopping:
    """Early stopping of a CTC recognizer on val CER that cannot fire on the all-blank plateau.

    A CTC model first reads nothing for hundreds of steps (val CER ~1.0, barely moving); patience only counts
    once the best CER is below ``patience_from`` and ``min_steps`` optimiser steps have run.
    """

    def __init__(self, patience: int, patience_from: float, min_steps: int):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.patience_from = patience_from
        self.min_steps = min_steps
        self.best = BestMetricTracker("val_cer", "min")
        self.epochs_without_improvement = 0

    def update(self, epoch: int, cer: float, steps: int) -> EarlyStoppingDecision:
        improved = self.best.update(epoch, cer)
        armed = self.best.best_value is not None and self.best.best_value < self.patience_from
        armed = armed and steps >= self.min_steps
        self.epochs_without_improvement = 0 if improved or not armed else self.epochs_without_improvement + 1
        return EarlyStoppingDecision(
            improved=improved,
            should_stop=armed and self.epochs_without_improvement >= self.patience,
            epochs_without_improvement=self.epochs_without_improvement,
            best_value=self.best.best_value,
            best_epoch=self.best.best_epoch,
        )
