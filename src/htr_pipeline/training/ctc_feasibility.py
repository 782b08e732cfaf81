"""Whether each label fits the CTC time steps its image gives, checked before any training.

CTC needs one time step per label symbol plus one blank between each pair of equal adjacent symbols, so a
sample is feasible when ``T >= L + R`` (time steps, label length, adjacent repeats). An infeasible sample has
an infinite loss; the previous system discovered those as huge losses during training instead of up front.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from htr_pipeline.models.recognizer import ctc_time_steps


class InfeasibleSamplesError(ValueError):
    """Some labels cannot fit their images' CTC time steps."""


def adjacent_repeats(text: str) -> int:
    return sum(1 for previous, current in itertools.pairwise(text) if previous == current)


@dataclass(frozen=True)
class FeasibilityReport:
    table: pd.DataFrame
    """One row per sample with text: sample_id, split, width, time_steps, label_length, repeats, slack, feasible."""

    @property
    def infeasible(self) -> pd.DataFrame:
        return self.table[~self.table["feasible"]]

    def largest_feasible_downsampling(self, candidates: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> int | None:
        """The largest downsampling factor (fewest time steps, cheapest recognizer) that keeps every sample
        feasible; ``None`` when even factor 1 does not."""
        needed = self.table["label_length"] + self.table["repeats"]
        fitting = [factor for factor in candidates if (ctc_time_steps(self.table["width"], factor) >= needed).all()]
        return max(fitting) if fitting else None


def feasibility_report(manifest: pd.DataFrame, width_downsampling: int) -> FeasibilityReport:
    """The CTC feasibility of every sample that has a transcription."""
    texts = manifest[manifest["transcription"].notna()]
    table = pd.DataFrame(
        {
            "sample_id": texts["sample_id"].to_numpy(),
            "split": texts["split"].to_numpy(),
            "width": texts["width"].to_numpy(),
            "time_steps": [ctc_time_steps(w, width_downsampling) for w in texts["width"]],
            "label_length": texts["transcription"].str.len().to_numpy(),
            "repeats": [adjacent_repeats(text) for text in texts["transcription"]],
        }
    )
    table["slack"] = table["time_steps"] - (table["label_length"] + table["repeats"])
    table["feasible"] = table["slack"] >= 0
    return FeasibilityReport(table)


def check_feasibility(report: FeasibilityReport, drop_infeasible: bool) -> list[str]:
    """Sample ids to drop (only with ``drop_infeasible``); otherwise infeasible samples are an error."""
    infeasible = report.infeasible
    if infeasible.empty:
        return []
    if drop_infeasible:
        return infeasible["sample_id"].tolist()
    shown = "\n".join(
        f"    {row.sample_id} ({row.split}): width {row.width} px -> T={row.time_steps}, "
        f"L={row.label_length}, repeats={row.repeats}"
        for row in infeasible.head(10).itertuples()
    )
    factor = report.largest_feasible_downsampling()
    hint = f"training.recognizer.width_downsampling={factor} would fit them all" if factor else "shorten the lines"
    raise InfeasibleSamplesError(
        f"{len(infeasible)} of {len(report.table)} samples cannot fit CTC (T < L + repeats):\n{shown}\n"
        f"Fix: {hint}, lower data.max_label_length, or set training.drop_infeasible: true to drop and list them."
    )
