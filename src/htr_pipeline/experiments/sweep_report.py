"""What a sweep worker reports when it leaves: the study's trials as a table, and a summary (counts, time, the
best trials or the Pareto front, configurations that never finished)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from htr_pipeline.config import SweepConfig
from htr_pipeline.experiments.study import DIRECTIONS, OBJECTIVE_FIGURES, WorkerReport

FINISHED_STATES = ("COMPLETE", "PRUNED")
"""A configuration and seed is done once one of its trials ended so (a duplicate draw aside)."""


def trials_frame(report: WorkerReport) -> pd.DataFrame:
    """One row per trial of the study: its configuration, seed, state, figures, run and time."""
    rows = []
    for trial in report.trials:
        figures = trial["figures"] or {}
        rows.append(
            {
                "trial": trial["number"],
                "state": trial["state"],
                "configuration": trial["label"],
                "seed": trial["seed"],
                "role": trial["role"],
                **{f"value:{key}": value for key, value in (trial["values"] or {}).items()},
                "judge_cer": figures.get("judge_cer"),
                "psnr_db": figures.get("psnr"),
                "page_f_measure": figures.get("page_f_measure"),
                "run_id": trial["run_id"],
                "seconds": trial["seconds"],
                "pruned_at_epoch": trial["pruned_at_epoch"],
                "retry_of": trial["retry_of"],
                "duplicate_of": trial["duplicate_of"],
                "ran_here": trial["number"] in report.trials_run_here,
            }
        )
    return pd.DataFrame(rows)


def unfinished_configurations(trials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configurations and seeds with no finished trial (every attempt failed, no retry left)."""
    attempts: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for trial in trials:
        if trial["configuration"] is not None and trial["duplicate_of"] is None:
            attempts.setdefault((trial["configuration"], trial["seed"]), []).append(trial)
    return [
        {"label": group[-1]["label"], "seed": seed, "failures": sum(trial["state"] == "FAIL" for trial in group)}
        for (_, seed), group in attempts.items()
        if all(trial["state"] == "FAIL" for trial in group)
    ]


def finished_more_than_once(trials: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Configurations and seeds that finished twice: the study's promise is that none does."""
    finished = [
        (trial["configuration"], trial["seed"])
        for trial in trials
        if trial["state"] in FINISHED_STATES and trial["duplicate_of"] is None and trial["configuration"] is not None
    ]
    return sorted({pair for pair in finished if finished.count(pair) > 1})


def best_lines(trials: Sequence[dict[str, Any]], objective: str) -> list[str]:
    """The best trial (one objective) or the Pareto front (both), in words."""
    complete = [trial for trial in trials if trial["state"] == "COMPLETE" and trial["objective"]]
    if not complete:
        return []
    names = OBJECTIVE_FIGURES[objective]
    signs = [1.0 if direction == "minimize" else -1.0 for direction in DIRECTIONS[objective]]
    keyed = [
        (tuple(sign * value for sign, value in zip(signs, trial["objective"], strict=True)), trial)
        for trial in complete
    ]
    if len(names) == 1:
        chosen = [min(keyed, key=lambda item: item[0])[1]]
    else:
        chosen = [trial for key, trial in keyed if not any(_dominates(other, key) for other, _ in keyed)]
    return [_describe(trial, names) for trial in chosen]


def _dominates(first: tuple[float, ...], second: tuple[float, ...]) -> bool:
    return all(a <= b for a, b in zip(first, second, strict=True)) and first != second


def _describe(trial: dict[str, Any], objective_figures: Sequence[str]) -> str:
    """The trial, its figures (the objective's first) and its MLflow run (what ``evaluation.checkpoint`` and
    ``inference.checkpoint`` take to use its model)."""
    figures = trial["figures"] or {}
    shown = {
        "page_f_measure": lambda value: f"valid pages F-measure {value:.2f}",
        "judge_cer": lambda value: f"judge CER {value:.4f}",
        "psnr": lambda value: f"PSNR {value:.2f} dB",
    }
    order = [*objective_figures, *(name for name in shown if name not in objective_figures)]
    parts = [shown[name](figures[name]) for name in order if figures.get(name) is not None]
    run = f"; MLflow run {trial['run_id']}" if trial.get("run_id") else ""
    return f"trial {trial['number']} ({trial['label']}, seed {trial['seed']}): {', '.join(parts)}{run}"


def sweep_summary(report: WorkerReport, sweep: SweepConfig, stage_one_trainings: int) -> dict[str, Any]:
    """The sweep's summary as JSON types (the run summary block and MLflow read it)."""
    return {
        "study_name": report.study_name,
        "storage": report.storage,
        "sampler": sweep.sampler,
        "objective": sweep.objective,
        "objective_split": sweep.objective_split,
        "seeds": list(sweep.seeds),
        "worker_index": report.worker_index,
        "trials_run_here": report.trials_run_here,
        "stage_one_trainings": stage_one_trainings,
        "seconds": report.seconds,
        "counts": report.counts,
        "best": best_lines(report.trials, sweep.objective),
        "failed_configurations": unfinished_configurations(report.trials),
        "finished_more_than_once": [list(pair) for pair in finished_more_than_once(report.trials)],
        "trials": report.trials,
    }
