"""How training runs: precision, seeding, and where epoch metrics go (the device: :mod:`htr_pipeline.devices`)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import torch


def grad_scaler(device: torch.device, precision: Literal["fp32", "bf16", "fp16"]) -> torch.amp.GradScaler:
    """Loss scaling, needed (and enabled) for fp16 only."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class MetricTracker(Protocol):
    """Where epoch metrics go: MLflow in the pipeline, a list in tests."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None: ...


class DiscardingTracker:
    """Where the metrics of data-parallel processes other than rank 0 go: nowhere (rank 0 logs for the run)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        pass


class MemoryTracker:
    """Keeps logged metrics in memory: ``history[name] = [(step, value), ...]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.documents: dict[str, Mapping[str, Any]] = {}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.history.setdefault(name, []).append((step, float(value)))

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        self.documents[artifact_file] = values
