"""A run to compare, as plain data, and the check that two runs can be compared line by line.

Two runs are paired only when their figures come from the same test lines read by the same judge. Anything else
(another split, other lines, other reference texts, another headline recognizer, a judge that reads the degraded
or clean lines differently, another decoding) is refused with a message that names both runs: an unpaired
difference is never printed as paired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from htr_pipeline.experiments.figures import CLEAN, DEGRADED

RECOGNIZER_COLUMN = "recognizer"
"""The column of ``evaluation_samples`` naming the recognizer a row was read by."""

EXAMPLES_IN_MESSAGES = 3


@dataclass(frozen=True)
class ComparedRun:
    """What a comparison needs of one evaluated run."""

    run_id: str
    """The run that holds the evaluation (per-line table and summary)."""
    label: str
    """A short name for tables and plots (``trial 3``, a run name)."""
    params: Mapping[str, str]
    """The validated config the run logged, flattened (``training.losses.weights.ctc`` -> ``"1.0"``)."""
    samples: pd.DataFrame
    """Its ``evaluation_samples``: one row per line and recognizer."""
    summary: Mapping[str, Any]
    """Its ``evaluation_summary``."""
    validation_history: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    """``{"val/cer": [(epoch, value), ...], ...}`` of the training run (epoch 0: the degraded input)."""
    training_run_id: str | None = None
    configuration: str | None = None
    """Runs of one configuration repeated over seeds share this (a sweep's trials); None: the run alone."""
    configuration_label: str | None = None
    """How tables name that configuration (``training.losses.weights.ctc=3.0``, ``baseline``)."""
    seed: int | None = None

    @property
    def headline_recognizer(self) -> str:
        return str(self.summary["headline_recognizer"])

    def table(self, recognizer: str | None = None) -> pd.DataFrame:
        """The per-line table of one recognizer (the headline one by default), sorted by line."""
        name = self.headline_recognizer if recognizer is None else recognizer
        rows = self.samples[self.samples[RECOGNIZER_COLUMN] == name]
        return rows.sort_values("sample_id", kind="stable").reset_index(drop=True)

    @property
    def recognizers(self) -> list[str]:
        return list(dict.fromkeys(self.samples[RECOGNIZER_COLUMN]))


class ComparisonSelectionError(ValueError):
    """The runs a comparison names cannot be found, were never evaluated, or cannot make a comparison."""


class UnpairedRunsError(ValueError):
    """Two runs were not evaluated on the same lines by the same judge, so no paired difference exists."""


def describe_run(run: ComparedRun) -> str:
    return f"{run.label} (run {run.run_id})"


def pairing_problem(baseline: ComparedRun, run: ComparedRun) -> str | None:
    """Why ``run`` cannot be paired with ``baseline`` line by line; None when it can."""
    for problem in (_split_problem, _lines_problem, _judge_problem):
        reason = problem(baseline, run)
        if reason is not None:
            return f"{describe_run(run)} and {describe_run(baseline)} {reason}"
    return None


def check_pairable(baseline: ComparedRun, run: ComparedRun) -> None:
    reason = pairing_problem(baseline, run)
    if reason is not None:
        raise UnpairedRunsError(f"Cannot compare line by line: {reason}.")


def _split_problem(baseline: ComparedRun, run: ComparedRun) -> str | None:
    if run.summary.get("split") != baseline.summary.get("split"):
        return (
            f"were evaluated on different test lines: split '{run.summary.get('split')}' against "
            f"'{baseline.summary.get('split')}'"
        )
    return None


def _lines_problem(baseline: ComparedRun, run: ComparedRun) -> str | None:
    ours, theirs = run.table(), baseline.table()
    only_ours = sorted(set(ours["sample_id"]) - set(theirs["sample_id"]))
    only_theirs = sorted(set(theirs["sample_id"]) - set(ours["sample_id"]))
    if only_ours or only_theirs:
        return (
            f"were evaluated on different test lines: {len(only_ours)} lines only in {run.label} "
            f"({_examples(only_ours)}), {len(only_theirs)} only in {baseline.label} ({_examples(only_theirs)})"
        )
    if len(ours) != len(theirs):
        return f"were evaluated on different test lines: {len(ours)} rows against {len(theirs)} (a line twice?)"
    texts_differ = ours.loc[ours["reference"].to_numpy() != theirs["reference"].to_numpy(), "sample_id"].tolist()
    if texts_differ:
        return (
            f"were evaluated on different test lines: {len(texts_differ)} lines have other reference texts "
            f"({_examples(texts_differ)}); they come from different data versions"
        )
    return None


def _judge_problem(baseline: ComparedRun, run: ComparedRun) -> str | None:
    if run.headline_recognizer != baseline.headline_recognizer:
        return (
            f"were read by different judges: {run.label} by its {run.headline_recognizer} recognizer, "
            f"{baseline.label} by its {baseline.headline_recognizer} recognizer"
        )
    if run.summary.get("decoding") != baseline.summary.get("decoding"):
        return (
            f"were read by different judges: {run.summary.get('decoding')} decoding against "
            f"{baseline.summary.get('decoding')}"
        )
    ours, theirs = run.table(), baseline.table()
    # The judge reads the degraded and the clean line of every test line; no generator is involved, so the same
    # judge gives the same readings, and any difference is another judge.
    differing = [
        f"{sample_id}: '{mine}' against '{other}'"
        for variant in (DEGRADED, CLEAN)
        for sample_id, mine, other in zip(
            ours["sample_id"], ours[f"reading_{variant}"], theirs[f"reading_{variant}"], strict=True
        )
        if mine != other
    ]
    if differing:
        return (
            f"were read by different judges: the {run.headline_recognizer} recognizers read {len(differing)} "
            f"degraded or clean lines differently ({'; '.join(differing[:EXAMPLES_IN_MESSAGES])}); they were "
            "trained with other settings or data"
        )
    return None


def _examples(sample_ids: Sequence[str]) -> str:
    shown = ", ".join(str(sample_id) for sample_id in sample_ids[:EXAMPLES_IN_MESSAGES])
    return shown + (", ..." if len(sample_ids) > EXAMPLES_IN_MESSAGES else "") if sample_ids else "none"
