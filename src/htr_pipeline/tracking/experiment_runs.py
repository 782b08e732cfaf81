"""The MLflow store as comparisons and sweeps use it: evaluated runs read back as
:class:`~htr_pipeline.experiments.runs.ComparedRun`, runs found by a tag or by their study, and the runs a sweep
creates for its trials (:class:`SweepRunStore`). The library (:mod:`htr_pipeline.experiments`) gets plain data from
here and never imports MLflow.

What a comparison or a sweep logs of its own outputs (summary, tables, pictures, the tags linking a comparison and
the runs it compares) is declared in ``conf/base/catalog.yml`` like every other output; an evaluation run's per-line
table is its ``evaluation/samples.parquet`` artifact (``evaluation_samples``), so runs compare from their ids alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow
import pandas as pd
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

from htr_pipeline.experiments.run_tags import (
    CONFIGURATION_LABEL_TAG,
    CONFIGURATION_TAG,
    OBJECTIVE_SPLIT_TAG,
    SEED_TAG,
    STUDY_TAG,
    TRIAL_STATE_TAG,
    TRIAL_TAG,
)
from htr_pipeline.experiments.runs import ComparedRun, ComparisonSelectionError
from htr_pipeline.tracking.store import EVALUATED_RUN_TAG, EVALUATION_RUN_TAG, EVALUATION_SUMMARY_ARTIFACT

EVALUATION_SAMPLES_ARTIFACT = "evaluation/samples.parquet"
"""Where an evaluation run keeps its per-line table (``conf/base/catalog.yml``, ``evaluation_samples``)."""
VALIDATION_METRIC_PREFIXES = ("val/", "val_degraded/")
COMPLETE = "COMPLETE"


def _client(tracking_uri: str | None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def _run_or_error(client: mlflow.MlflowClient, run_id: str, setting: str) -> Any:
    try:
        return client.get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise ComparisonSelectionError(
            f"{setting}: run '{run_id}' is not in the MLflow store {client.tracking_uri} ({error.message}); check "
            "the id in the MLflow UI, or set comparison.tracking_uri to the store that holds it"
        ) from None


def _has_artifact(client: mlflow.MlflowClient, run_id: str, artifact: str) -> bool:
    folder = str(PurePosixPath(artifact).parent)
    return artifact in {item.path for item in client.list_artifacts(run_id, folder)}


def _evaluation_run(client: mlflow.MlflowClient, run: Any, setting: str) -> Any:
    """The run that holds the evaluation of ``run``: itself (a main job or an evaluation run), or the latest
    evaluation of a training run."""
    if _has_artifact(client, run.info.run_id, EVALUATION_SUMMARY_ARTIFACT):
        return run
    evaluation_id = run.data.tags.get(EVALUATION_RUN_TAG)
    if evaluation_id is None:
        raise ComparisonSelectionError(
            f"{setting}: run {run.info.run_id} was never evaluated; evaluate it first with `kedro run "
            f"--pipelines=evaluation --params evaluation.checkpoint={run.info.run_id}`"
        )
    return _run_or_error(client, evaluation_id, setting)


@contextlib.contextmanager
def _no_download_bars() -> Iterator[None]:
    """MLflow draws a progress bar for every artifact it downloads; a sweep downloads one per trial."""
    previous = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name]
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = previous


def _download(client: mlflow.MlflowClient, run_id: str, artifact: str, folder: str) -> str:
    with _no_download_bars():
        return client.download_artifacts(run_id, artifact, folder)


def _download_json(client: mlflow.MlflowClient, run_id: str, artifact: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        return json.loads(Path(_download(client, run_id, artifact, folder)).read_text(encoding="utf-8"))


def read_compared_run(run_id: str, tracking_uri: str | None = None, setting: str = "comparison.runs") -> ComparedRun:
    """A :class:`~htr_pipeline.experiments.runs.ComparedRun` from a run id (a main-job run, an evaluation run, or
    a training run that was evaluated): its per-line table and summary, its training run's logged config and
    validation history, and, for a sweep's trial, its configuration and seed."""
    client = _client(tracking_uri)
    evaluation = _evaluation_run(client, _run_or_error(client, run_id, setting), setting)
    evaluation_id = evaluation.info.run_id
    training_id = evaluation.data.tags.get(EVALUATED_RUN_TAG, evaluation_id)
    if not _has_artifact(client, evaluation_id, EVALUATION_SAMPLES_ARTIFACT):
        raise ComparisonSelectionError(
            f"{setting}: the evaluation run {evaluation_id} has no per-line table ({EVALUATION_SAMPLES_ARTIFACT}; "
            "it was evaluated before evaluations logged one): evaluate it again with `kedro run --pipelines="
            f"evaluation --params evaluation.checkpoint={training_id}`"
        )
    training = evaluation if training_id == evaluation_id else _run_or_error(client, training_id, setting)
    with tempfile.TemporaryDirectory() as folder:
        samples = pd.read_parquet(_download(client, evaluation_id, EVALUATION_SAMPLES_ARTIFACT, folder))
    tags = training.data.tags
    trial, seed = tags.get(TRIAL_TAG), tags.get(SEED_TAG)
    return ComparedRun(
        run_id=evaluation_id,
        label=f"trial {trial}, seed {seed}" if trial is not None else evaluation_id[:8],
        params={**training.data.params, **evaluation.data.params},
        samples=samples,
        summary=_download_json(client, evaluation_id, EVALUATION_SUMMARY_ARTIFACT),
        validation_history={
            metric: sorted((point.step, point.value) for point in client.get_metric_history(training_id, metric))
            for metric in sorted(training.data.metrics)
            if metric.startswith(VALIDATION_METRIC_PREFIXES)
        },
        training_run_id=training_id,
        configuration=tags.get(CONFIGURATION_TAG),
        configuration_label=tags.get(CONFIGURATION_LABEL_TAG),
        seed=None if seed is None else int(seed),
    )


def tagged_run_ids(tag: str, tracking_uri: str | None = None) -> list[str]:
    """Ids of the finished runs carrying ``key=value`` (``comparison.tag``) that hold an evaluation, oldest first;
    of a sweep, its complete trials only (not its stage-1 or objective runs, nor a trial that failed after its
    training run finished)."""
    key, separator, value = tag.partition("=")
    if not separator or not key:
        raise ComparisonSelectionError(f"comparison.tag: expected key=value, got '{tag}'")
    client = _client(tracking_uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    escaped = value.replace("'", "\\'")
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{key}` = '{escaped}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    return [
        run.info.run_id
        for run in runs
        if _has_artifact(client, run.info.run_id, EVALUATION_SUMMARY_ARTIFACT)
        and OBJECTIVE_SPLIT_TAG not in run.data.tags
        and run.data.tags.get(TRIAL_STATE_TAG, COMPLETE) == COMPLETE
    ]


def sweep_trial_run_ids(study_name: str, tracking_uri: str | None = None) -> list[str]:
    """The evaluated runs of a sweep's finished trials, oldest first (``comparison.sweep``)."""
    client = _client(tracking_uri)
    run_ids = tagged_run_ids(f"{STUDY_TAG}={study_name}", tracking_uri)
    trials = [run_id for run_id in run_ids if client.get_run(run_id).data.tags.get(TRIAL_STATE_TAG) == COMPLETE]
    if not trials:
        raise ComparisonSelectionError(
            f"comparison.sweep: no finished trial of study '{study_name}' is in the MLflow store {client.tracking_uri}"
        )
    return trials


def active_run_tag(name: str) -> str | None:
    """A tag of the run this session logs into (``kedro.env``); None outside a run."""
    run = mlflow.active_run()
    return None if run is None else mlflow.MlflowClient().get_run(run.info.run_id).data.tags.get(name)


class SweepRunStore:
    """The MLflow store as a sweep uses it (:class:`htr_pipeline.experiments.trials.RunStore`): runs created
    for each ``kedro run`` of a trial, nested under the sweep's run, read back while and after they run."""

    def __init__(self, tracking_uri: str, experiment_id: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id

    @classmethod
    def for_active_run(cls) -> SweepRunStore:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("no active MLflow run: the sweep runs inside `kedro run`, which kedro-mlflow tracks")
        return cls(mlflow.get_tracking_uri(), run.info.experiment_id)

    def create_run(self, name: str, parent_run_id: str | None, tags: Mapping[str, str]) -> str:
        parent = {} if parent_run_id is None else {"mlflow.parentRunId": parent_run_id}
        run = _client(self.tracking_uri).create_run(self.experiment_id, tags={**tags, **parent}, run_name=name)
        return run.info.run_id

    def metric_history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        return sorted(
            (point.step, point.value) for point in _client(self.tracking_uri).get_metric_history(run_id, metric)
        )

    def tag(self, run_id: str, name: str) -> str | None:
        return _client(self.tracking_uri).get_run(run_id).data.tags.get(name)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = _client(self.tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    def end_run(self, run_id: str, status: str) -> None:
        """End ``run_id`` as ``status`` unless its own process already ended it."""
        client = _client(self.tracking_uri)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status=status)

    def evaluation_summary(self, run_id: str) -> dict[str, Any]:
        return _download_json(_client(self.tracking_uri), run_id, EVALUATION_SUMMARY_ARTIFACT)
