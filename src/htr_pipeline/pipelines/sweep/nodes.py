"""Nodes of sweep: check the search space, work on the Optuna study (each trial a ``kedro run`` of this
project), then compare the finished trials. The library does the work; these hand it the project's data version,
folders and MLflow store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.config import ComparisonConfig, DataConfig, EvaluationConfig, SweepConfig, TrainingConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.experiments.comparison import choose_baseline, compare_runs
from htr_pipeline.experiments.space import check_sweep, data_fingerprint
from htr_pipeline.experiments.study import SweepPlan, run_worker
from htr_pipeline.experiments.sweep_report import sweep_summary, trials_frame
from htr_pipeline.experiments.trials import DATA_DATASETS, KedroProject, KedroTrialExecutor
from htr_pipeline.pipelines.comparison.nodes import ComparisonResult, as_outputs, bootstrap_settings
from htr_pipeline.project_config import project_root
from htr_pipeline.tracking import SweepRunStore, active_run_id, active_run_tag, read_compared_run

STUDY_FILE = "optuna.db"
"""The default storage: an sqlite file in the sweep's work folder."""
DEFAULT_ENVIRONMENT = "local"


class NothingToCompareError(ValueError):
    """A sweep ended with fewer than two finished trials."""


def check_sweep_settings(
    data: DataConfig, training: TrainingConfig, evaluation: EvaluationConfig, sweep: SweepConfig
) -> dict[str, Any]:
    """Every key and value of the search space against the schema, before anything trains; the effective config
    the trials start from."""
    base = {
        "data": data.model_dump(mode="json"),
        "training": training.model_dump(mode="json"),
        "evaluation": evaluation.model_dump(mode="json"),
    }
    check_sweep(sweep, base)
    return base


def run_sweep(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: Charset,
    sweep_work_folder: Path,
    sweep_base_config: dict[str, Any],
    sweep: SweepConfig,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Work on the study until it is finished; the study's trials and this worker's summary."""
    fingerprint = data_fingerprint(manifest, charset)
    data_version = ingested_version(line_images)
    storage = sweep.storage or f"sqlite:///{(sweep_work_folder / STUDY_FILE).as_posix()}"
    environment = active_run_tag("kedro.env")
    project = KedroProject(
        path=Path(project_root()),
        env=None if environment in (None, DEFAULT_ENVIRONMENT) else environment,
        work_folder=sweep_work_folder / sweep.study_name,
        data_versions=dict.fromkeys(DATA_DATASETS, data_version),
        parent_run_id=active_run_id(),
        poll_seconds=min(5.0, sweep.heartbeat_seconds / 2),
    )
    executor = KedroTrialExecutor(project, SweepRunStore.for_active_run(), sweep, fingerprint)
    report = run_worker(SweepPlan(sweep, sweep_base_config, fingerprint, storage), executor)
    return sweep_summary(report, sweep, executor.stage_one_trainings), trials_frame(report)


KEDRO_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z")
"""How Kedro names a save version (``2026-12-05T15.52.45.295Z``)."""


def ingested_version(line_images: LineImageStore) -> str:
    """The ingestion this run reads (made earlier, or by this same run): Kedro keeps a versioned dataset in
    ``<filepath>/<version>/<name>``, and one ingestion saves its manifest, images and charset under one version."""
    version = line_images.root.parent.name
    if not KEDRO_VERSION.fullmatch(version):
        raise ValueError(
            f"line_images is read from {line_images.root}, not from a versioned folder: a sweep pins the ingested "
            "version its trials read, so keep `versioned: true` on line_images, manifest and charset in catalog.yml"
        )
    return version


def compare_sweep_trials(sweep_summary: dict[str, Any], comparison: ComparisonConfig) -> ComparisonResult:
    """The finished trials against the baseline (the configured defaults), seeds summarised per configuration;
    trials not paired with the baseline (another stage 1: another judge) are listed with the reason."""
    run_ids = [trial["run_id"] for trial in sweep_summary["trials"] if trial["state"] == "COMPLETE"]
    if len(run_ids) < 2:
        raise NothingToCompareError(
            f"sweep '{sweep_summary['study_name']}': {len(run_ids)} trial(s) completed, so there is nothing to "
            "compare; see sweep_trials for what happened to the others, and each trial's kedro.log"
        )
    runs = [read_compared_run(run_id) for run_id in run_ids]
    comparison_result = compare_runs(
        runs, choose_baseline(runs, None, sweep_defaults=True), bootstrap_settings(comparison), refuse_unpaired=False
    )
    return as_outputs(comparison_result)
