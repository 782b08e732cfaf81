"""Best-model criterion audit: which epoch each validation metric picks, where they disagree, which checkpoints
exist. The seed system kept one checkpoint chosen by the combined score (epoch 24) while epoch 26 had the best
CER, and its per-epoch save could delete the best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd

from htr_pipeline.config import MONITOR_MODES


@dataclass(frozen=True)
class CriterionChoice:
    metric: str
    mode: Literal["min", "max"]
    epoch: int
    value: float
    checkpoint: str
    checkpoint_exists: bool | None
    """None when no checkpoint folder was given."""


@dataclass(frozen=True)
class BestModelReport:
    choices: list[CriterionChoice]
    disagreements: list[str]
    verdict: Literal["ok", "warning", "problem"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": [asdict(c) for c in self.choices],
            "disagreements": self.disagreements,
            "verdict": self.verdict,
        }


def history_table(history: Mapping[str, Sequence[tuple[int, float]]]) -> pd.DataFrame:
    """``{metric: [(epoch, value), ...]}`` (an MLflow metric history) as one row per epoch."""
    columns = {metric: pd.Series(dict(points), dtype="float64") for metric, points in history.items()}
    return pd.DataFrame(columns).sort_index().rename_axis("epoch")


def with_combined(table: pd.DataFrame, cer_weight: float) -> pd.DataFrame:
    """Fill ``val/combined`` = val/psnr - cer_weight x val/cer where it was not logged."""
    computed = table["val/psnr"] - cer_weight * table["val/cer"]
    filled = table.copy()
    filled["val/combined"] = table["val/combined"].fillna(computed) if "val/combined" in table else computed
    return filled


def best_model_report(
    table: pd.DataFrame, cer_weight: float, existing_checkpoints: Sequence[str] | None = None
) -> BestModelReport:
    """The epoch each criterion picks (ties: the earliest), and whether its checkpoint was kept."""
    table = with_combined(table, cer_weight)
    choices = []
    for metric, mode in MONITOR_MODES.items():
        values = table[metric].dropna()
        epoch = int(values.idxmin() if mode == "min" else values.idxmax())
        checkpoint = f"best_{metric.split('/')[1]}.pt"
        exists = None if existing_checkpoints is None else checkpoint in existing_checkpoints
        choices.append(CriterionChoice(metric, mode, epoch, float(values[epoch]), checkpoint, exists))
    disagreements = [
        f"{first.metric} picks epoch {first.epoch}, {second.metric} picks epoch {second.epoch}"
        for index, first in enumerate(choices)
        for second in choices[index + 1 :]
        if first.epoch != second.epoch
    ]
    missing = [choice for choice in choices if choice.checkpoint_exists is False]
    verdict: Literal["ok", "warning", "problem"] = "problem" if missing else ("warning" if disagreements else "ok")
    return BestModelReport(choices, disagreements, verdict)
