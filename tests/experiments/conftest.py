"""Evaluated runs built from real per-line scores: readings scored by the project's metrics (jiwer), summarised
by the evaluation's own aggregates, as ``evaluation_samples`` and ``evaluation_summary`` hold them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from htr_pipeline.evaluation.aggregates import summarise
from htr_pipeline.experiments.figures import CLEAN, DEGRADED, RESTORED
from htr_pipeline.experiments.runs import ComparedRun
from htr_pipeline.metrics import character_error_rates, word_error_rates
from htr_pipeline.scoring.lines import COLUMNS

REFERENCES = [
    "the quick brown fox",
    "jumps over",
    "the lazy dog",
    "pack my box",
    "with five dozen",
    "liquor jugs",
    "sphinx of black quartz",
    "judge my vow",
]


def garbled(text: str, every: int) -> str:
    """``text`` with every ``every``-th character replaced: a reading with a known number of errors."""
    return "".join("#" if every and index % every == every - 1 else char for index, char in enumerate(text))


def line_table(
    references: Sequence[str],
    readings: dict[str, Sequence[str]],
    psnr_db: dict[str, Sequence[float]],
    ssim: dict[str, Sequence[float]],
    sample_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A per-line table with the columns of :data:`htr_pipeline.scoring.lines.COLUMNS`, each edit count from
    :mod:`htr_pipeline.metrics`."""
    ids = list(sample_ids) if sample_ids is not None else [f"line-{index:03d}" for index in range(len(references))]
    rows = []
    for index, reference in enumerate(references):
        row = {"sample_id": ids[index], "reference": reference, "has_text": bool(reference), "width": 64 + 8 * index}
        for variant in (DEGRADED, RESTORED, CLEAN):
            reading = readings[variant][index]
            characters = character_error_rates([reference], [reading])
            words = word_error_rates([reference], [reading])
            row[f"reading_{variant}"] = reading
            row[f"cer_{variant}"] = characters.corpus
            row[f"wer_{variant}"] = words.corpus
            row[f"char_edits_{variant}"] = characters.edits
            row[f"word_edits_{variant}"] = words.edits
            row["char_reference_length"] = characters.reference_length
            row["word_reference_length"] = words.reference_length
        for variant in (DEGRADED, RESTORED):
            row[f"psnr_db_{variant}"] = psnr_db[variant][index]
            row[f"ssim_{variant}"] = ssim[variant][index]
        rows.append(row)
    table = pd.DataFrame(rows)[COLUMNS]
    for column in COLUMNS:
        if "_edits_" in column:
            table[column] = table[column].astype("Int64")
    return table


def evaluated_run(
    run_id: str,
    restored_every: int,
    psnr_shift: float = 0.0,
    params: dict[str, str] | None = None,
    judge_every_clean: int = 0,
    references: Sequence[str] = REFERENCES,
    split: str = "test",
    configuration: str | None = None,
    configuration_label: str | None = None,
    seed: int | None = None,
    recognizers: Sequence[str] = ("judge", "in_loop", "degraded_trained"),
) -> ComparedRun:
    """A run whose restored lines are read with an error every ``restored_every`` characters (0: none); degraded
    lines every 3rd character, clean lines perfectly (or every ``judge_every_clean``-th: another judge)."""
    lines = len(references)
    rng = np.random.default_rng(7)
    base_psnr = 18.0 + rng.uniform(0, 2, lines)
    tables = []
    for recognizer in recognizers:
        readings = {
            DEGRADED: [garbled(text, 3 if recognizer != "degraded_trained" else 4) for text in references],
            RESTORED: [garbled(text, restored_every) for text in references],
            CLEAN: [garbled(text, judge_every_clean if recognizer == "judge" else 0) for text in references],
        }
        table = line_table(
            references,
            readings,
            {DEGRADED: base_psnr, RESTORED: base_psnr + 8.0 + psnr_shift + rng.normal(0, 0.5, lines)},
            {
                DEGRADED: np.full(lines, 0.7),
                RESTORED: np.clip(0.9 + 0.01 * psnr_shift + rng.normal(0, 0.01, lines), 0, 1),
            },
            sample_ids=[f"{split}-{index:03d}" for index in range(lines)],
        )
        tables.append(table.assign(recognizer=recognizer))
    samples = pd.concat(tables, ignore_index=True)
    samples = samples[["recognizer", *COLUMNS]]
    summary = {
        "split": split,
        "decoding": "greedy",
        "headline_recognizer": recognizers[0],
        "recognizers": list(recognizers),
        **{
            name: summarise(samples[samples["recognizer"] == name][COLUMNS].reset_index(drop=True), 200, 0)
            for name in recognizers
        },
    }
    return ComparedRun(
        run_id=run_id,
        label=run_id,
        params=params or {"training.losses.weights.ctc": "1.0", "training.seed": "42"},
        samples=samples,
        summary=summary,
        validation_history={
            "val/cer": [(1, 0.6), (2, 0.4)],
            "val/psnr": [(1, 24.0), (2, 26.0 + psnr_shift)],
            "val_degraded/cer": [(0, 0.9)],
            "val_degraded/psnr": [(0, 18.0)],
        },
        training_run_id=f"train-{run_id}",
        configuration=configuration,
        configuration_label=configuration_label,
        seed=seed,
    )
