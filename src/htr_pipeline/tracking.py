"""MLflow as the destination of live training metrics (the training library itself never imports MLflow)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow
import mlflow.pytorch
import pandas as pd
import torch
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from mlflow.entities import Metric
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from pydantic import TypeAdapter
from torch import nn

from htr_pipeline.config import GeneratorConfig, RecognizerConfig, nested_items
from htr_pipeline.experiments.runs import ComparedRun, ComparisonSelectionError
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.project_paths import resolve_in_project


class MlflowTracker:
    """Logs epoch metrics to one MLflow run, also when another run is active (a resumed training logs into
    the run it continues), and from a spawned data-parallel worker, which is why the store is named."""

    def __init__(self, run_id: str, tracking_uri: str):
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        timestamp_ms = int(time.time() * 1000)
        logged = [Metric(name, float(value), timestamp_ms, step) for name, value in metrics.items()]
        mlflow.MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=logged)

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.MlflowClient(self.tracking_uri).log_dict(self.run_id, dict(values), artifact_file)


def tracker_for_current_store() -> Callable[[str], MlflowTracker]:
    """A picklable ``run_id -> tracker`` for the store the active run lives in."""
    return functools.partial(MlflowTracker, tracking_uri=mlflow.get_tracking_uri())


def current_tracking_uri() -> str:
    """The store this session tracks into (conf/base/mlflow.yml)."""
    return mlflow.get_tracking_uri()


def log_parameters(parameters: Mapping[str, str]) -> None:
    """Flattened parameters (:func:`htr_pipeline.config.flatten_as_logged`) into the active run."""
    mlflow.log_params(dict(parameters))


def active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: training runs inside `kedro run`, which kedro-mlflow tracks")
    return run.info.run_id


CHECKPOINT_FOLDER_TAG = "htr.checkpoint_folder"
EVALUATION_RUN_TAG = "htr.evaluation_run_id"
"""Set on a training run: the run that last evaluated it."""
EVALUATION_SUMMARY_ARTIFACT = "evaluation/summary.json"
"""Tag on a training run naming the folder of its checkpoints (evaluation finds them by run id)."""


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def checkpoint_folder_of_run(run_id: str, config_key: str, tracking_uri: str | None = None) -> str:
    """The checkpoint folder of a training run (in ``tracking_uri``, default: the project's store);
    ``config_key`` names the setting that gave the run id."""
    run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    folder = run.data.tags.get(CHECKPOINT_FOLDER_TAG)
    if folder is None:
        raise ValueError(f"{config_key}: MLflow run {run_id} has no '{CHECKPOINT_FOLDER_TAG}' tag: not a training run")
    return str(resolve_in_project(folder))


GRADIENT_REPORT_FOLDER = "gradients"
"""Artifact folder of a training run's per-epoch gradient summaries (``gradients/epoch_NNN.json``)."""


@dataclass(frozen=True)
class TrainingRunRecord:
    """What an MLflow store knows of one training run, read back for an audit."""

    run_id: str
    run_name: str
    status: str
    tracking_uri: str
    params: dict[str, str]
    metric_history: dict[str, list[tuple[int, float]]]
    """``{metric: [(step, value), ...]}`` sorted by step; training logs epochs as steps."""
    gradient_reports: list[dict[str, Any]]
    """The ``gradients/epoch_NNN.json`` artifacts, in epoch order."""
    checkpoint_folder: str | None
    """From the ``htr.checkpoint_folder`` tag; None if the run never finished a GAN epoch loop."""
    evaluation_summary: dict[str, Any] | None = None
    """The ``evaluation/summary.json`` of the run's latest evaluation (``htr.evaluation_run_id`` tag); None if
    it was never evaluated."""


class RunNotFoundError(ValueError):
    """The run to audit is not in the store (or no training run is)."""


def latest_training_run_id(tracking_uri: str) -> str:
    """The newest run, over every experiment of the store, that trained a GAN (has a checkpoint folder tag)."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{CHECKPOINT_FOLDER_TAG}` LIKE '%'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise RunNotFoundError(
            f"no training run in the MLflow store {tracking_uri}: run `kedro run` (or `kedro run "
            "--pipeline=training`) first, or name a run with diagnostics.run_id / diagnostics.tracking_uri"
        )
    return runs[0].info.run_id


def read_training_run(run_id: str, tracking_uri: str) -> TrainingRunRecord:
    """Params, full metric histories, gradient reports and checkpoint folder of one run."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise RunNotFoundError(
            f"diagnostics.run_id: run '{run_id}' is not in the MLflow store {tracking_uri} ({error.message}); "
            "check the id in the MLflow UI, or set diagnostics.tracking_uri to the store that holds it"
        ) from error
    history = {
        metric: sorted((point.step, point.value) for point in client.get_metric_history(run_id, metric))
        for metric in sorted(run.data.metrics)
    }
    return TrainingRunRecord(
        run_id=run_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        tracking_uri=tracking_uri,
        params=dict(run.data.params),
        metric_history=history,
        gradient_reports=_gradient_reports(client, run_id),
        checkpoint_folder=run.data.tags.get(CHECKPOINT_FOLDER_TAG),
        evaluation_summary=_evaluation_summary(client, run.data.tags.get(EVALUATION_RUN_TAG)),
    )


def _evaluation_summary(client: mlflow.MlflowClient, evaluation_run_id: str | None) -> dict[str, Any] | None:
    if evaluation_run_id is None:
        return None
    logged = {artifact.path for artifact in client.list_artifacts(evaluation_run_id, "evaluation")}
    if EVALUATION_SUMMARY_ARTIFACT not in logged:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(evaluation_run_id, EVALUATION_SUMMARY_ARTIFACT, folder)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _gradient_reports(client: mlflow.MlflowClient, run_id: str) -> list[dict[str, Any]]:
    artifacts = sorted(artifact.path for artifact in client.list_artifacts(run_id, GRADIENT_REPORT_FOLDER))
    if not artifacts:
        return []
    with tempfile.TemporaryDirectory() as folder:
        local = Path(client.download_artifacts(run_id, GRADIENT_REPORT_FOLDER, folder))
        return [json.loads((local / Path(path).name).read_text()) for path in artifacts if path.endswith(".json")]


def log_diagnostics(audit: str, report: Mapping[str, Any], markdown: str, figure: Any | None, verdict_tag: str) -> None:
    """One audit's report into the active (diagnostics) run, and its verdict as a tag to filter runs by."""
    mlflow.log_dict(dict(report), f"diagnostics/{audit}.json")
    mlflow.log_text(markdown, f"diagnostics/{audit}.md")
    if figure is not None:
        mlflow.log_figure(figure, f"diagnostics/{audit}.png")
    mlflow.set_tag(f"htr.diagnostics.{audit}", verdict_tag)


def log_diagnostics_summary(summary: Mapping[str, Any], markdown: str) -> None:
    mlflow.log_dict(dict(summary), "diagnostics/summary.json")
    mlflow.log_text(markdown, "diagnostics/summary.md")
    mlflow.set_tag("htr.diagnostics.verdict", summary["verdict"])


def link_diagnostics_run(audited_run_id: str, audited_tracking_uri: str) -> None:
    """Tag the diagnostics run with the run it audited, and that run with its diagnostics (same store only)."""
    mlflow.set_tag("htr.audited_run_id", audited_run_id)
    if audited_tracking_uri == mlflow.get_tracking_uri():
        tag_run(audited_run_id, {"htr.diagnostics_run_id": active_run_id()})


def log_evaluation(
    summary: Mapping[str, Any], report: str, images: Mapping[str, Any], evaluated_run_id: str | None
) -> None:
    """Metrics, report and figures into the active (evaluation) run, linked both ways to the training run.

    ``images`` maps artifact names (``plots`` for ``evaluation/plots.png``) to their images."""
    mlflow.log_metrics(evaluation_metrics(summary))
    mlflow.log_params(evaluation_settings(summary))
    mlflow.log_dict(dict(summary), EVALUATION_SUMMARY_ARTIFACT)
    mlflow.log_text(report, "evaluation/report.md")
    for name, image in images.items():
        mlflow.log_image(image, artifact_file=f"evaluation/{name}.png")
    if evaluated_run_id is not None:
        mlflow.set_tag("htr.evaluated_run_id", evaluated_run_id)
        tag_run(evaluated_run_id, {EVALUATION_RUN_TAG: active_run_id()})


EVALUATION_SETTINGS = ("bootstrap_resamples", "bootstrap_seed", "confidence_level")
"""Numbers of an evaluation summary that say how it was computed: params, not metrics."""


def evaluation_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``eval/<recognizer>/<figure>`` for every number of the summary but its settings; the restored image is
    called ``restored`` here, as in the README and the report (``enhanced`` in the summary's own keys)."""
    return {
        f"eval/{key}".replace("enhanced", "restored"): value
        for key, value in _flat_numbers(summary).items()
        if key.rsplit("/", 1)[-1] not in EVALUATION_SETTINGS
    }


def evaluation_settings(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The bootstrap settings of the headline recognizer's figures (every recognizer shares them)."""
    figures = summary[summary["headline_recognizer"]]
    return {f"evaluation.{name}": figures[name] for name in EVALUATION_SETTINGS}


def log_inference(summary: Mapping[str, Any]) -> None:
    """The inference summary and its mean DIBCO scores into the active run."""
    mlflow.log_dict(dict(summary), "inference/summary.json")
    mlflow.log_metrics({f"inference/{key}": value for key, value in _flat_numbers(summary["mean_scores"]).items()})
    if summary["images_per_second"] is not None:
        mlflow.log_metric("inference/images_per_second", summary["images_per_second"])


def log_models(models: Any, example: Any) -> dict[str, str]:
    """The generator and recognizer as MLflow models, with an input example and its inferred signature, and
    each as plain weights plus the settings it was built from (``weights/<name>.pt``, ``weights/<name>.json``),
    which :func:`load_logged_model` rebuilds without unpickling anything. Returns each logged model's URI by name."""
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    uris = {}
    if models.generator is not None:
        uris["generator"] = _log_pytorch_model(models.generator.cpu(), "generator", example, requirements)
        _log_weights(models.generator, "generator", {"config": models.model_configs.get("generator")})
    uris["recognizer"] = _log_pytorch_model(_LogitsOnly(models.recognizer.cpu()), "recognizer", example, requirements)
    settings = {"config": models.model_configs.get("recognizer"), "num_classes": models.recognizer.num_classes}
    _log_weights(models.recognizer, "recognizer", settings)
    return uris


def register_generator(model_uri: str, name: str) -> int:
    """A new version of registered model ``name`` (``evaluation.register_model``) from a logged generator; returns
    the version number."""
    return int(mlflow.register_model(model_uri, name).version)


def _log_pytorch_model(model: nn.Module, name: str, example: Any, requirements: list[str]) -> str:
    # "pickle", not MLflow 3's default "pt2": a torch.export graph only accepts the example's exact shape, and
    # lines differ in width. Loading it (mlflow.pytorch.load_model) unpickles: load_logged_model does not.
    return mlflow.pytorch.log_model(
        model, name=name, input_example=example, pip_requirements=requirements, serialization_format="pickle"
    ).model_uri


LOGGED_WEIGHTS_FOLDER = "weights"
"""Run artifact folder of the logged models as ``<name>.pt`` (a state dict) and ``<name>.json`` (its settings)."""


def _log_weights(model: nn.Module, name: str, settings: Mapping[str, Any]) -> None:
    if settings.get("config") is None:
        return  # a model built in a test, not from a checkpoint: no settings to rebuild it from
    with tempfile.TemporaryDirectory() as folder:
        torch.save({key: tensor.cpu() for key, tensor in model.state_dict().items()}, Path(folder) / f"{name}.pt")
        (Path(folder) / f"{name}.json").write_text(json.dumps(dict(settings), indent=2))
        mlflow.log_artifacts(folder, LOGGED_WEIGHTS_FOLDER)


def load_logged_model(run_id: str, name: str, tracking_uri: str | None = None) -> nn.Module:
    """The ``generator`` or ``recognizer`` an evaluation run logged, rebuilt from the model registry and its
    weights read with ``torch.load(weights_only=True)``: no code from the run's files is executed."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        settings_file = client.download_artifacts(run_id, f"{LOGGED_WEIGHTS_FOLDER}/{name}.json", folder)
        settings = json.loads(Path(settings_file).read_text())
        weights = client.download_artifacts(run_id, f"{LOGGED_WEIGHTS_FOLDER}/{name}.pt", folder)
        state = torch.load(weights, map_location="cpu", weights_only=True)
    if name == "generator":
        model = build_generator(TypeAdapter(GeneratorConfig).validate_python(settings["config"]))
    else:
        model = build_recognizer(RecognizerConfig.model_validate(settings["config"]), settings["num_classes"])
    model.load_state_dict(state)
    return model.eval()


def load_logged_generator(run_id: str, tracking_uri: str | None = None) -> nn.Module:
    """The restoration generator of an evaluation run (see :func:`load_logged_model`)."""
    return load_logged_model(run_id, "generator", tracking_uri)


class _LogitsOnly(nn.Module):
    """The recognizer as a plain tensor-to-tensor model (MLflow signatures describe tensors, not dataclasses)."""

    def __init__(self, recognizer: Any):
        super().__init__()
        self.recognizer = recognizer

    def forward(self, images: Any) -> Any:
        return self.recognizer(images).logits


def _flat_numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number of a nested summary, keyed by its ``/``-joined path."""
    return {
        path: float(value)
        for path, value in nested_items(values, separator="/")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


RUN_HOST_TAG = "htr.host"
RUN_PID_TAG = "htr.pid"
"""Tags naming the host and process that run a run: how a later start tells that a ``RUNNING`` run is dead."""


def tag_run_process(run_id: str) -> None:
    """Record this host and process on ``run_id`` (a run this process is running)."""
    tag_run(run_id, {RUN_HOST_TAG: socket.gethostname(), RUN_PID_TAG: str(os.getpid())})


def mark_dead_runs_killed(tracking_uri: str) -> list[str]:
    """Mark ``KILLED`` every ``RUNNING`` run of this host whose process is gone; return their ids.

    Runs of other hosts are left as they are: from here there is no telling whether their process lives.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    if not experiment_ids:
        return []
    running = client.search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'RUNNING' AND tags.`{RUN_HOST_TAG}` = '{socket.gethostname()}'",
    )
    dead = [run.info.run_id for run in running if not _process_alive(int(run.data.tags.get(RUN_PID_TAG, "0")))]
    for run_id in dead:
        client.set_terminated(run_id, status="KILLED")
    return dead


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def finish_continued_run(run_id: str) -> None:
    """A run that a resumed training completed (it logged its remaining epochs there) ends ``FINISHED``."""
    mlflow.MlflowClient().set_terminated(run_id, status="FINISHED")


@contextlib.contextmanager
def store_creation_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive file lock beside an sqlite store while it is created or migrated: two first-ever runs
    started at once would otherwise both run its migrations (``duplicate column name``). Other stores: no lock."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(f"{database.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


ARTIFACTS_FOLDER = "mlartifacts"
"""The project's artifact folder (``conf/base/mlflow.yml``), beside ``mlflow.db``."""

_ARTIFACT_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)
"""Where an MLflow sqlite store keeps absolute artifact locations (MLflow has no API to change them)."""


def move_artifact_locations(store: Path, project_root: Path, experiment_name: str) -> Path | None:
    """Point a copied project's store at its own ``mlartifacts``: returns the folder it was copied from, or None.

    MLflow writes every artifact location as an absolute path. A project copied elsewhere (laptop to GPU server)
    would then read artifacts from, and log new runs into, the original. The project folder the store was made
    in is read from ``experiment_name``'s location (``<root>/mlartifacts``); every location under that root is
    rewritten to the same place under ``project_root``.
    """
    if not store.is_file():
        return None
    with sqlite3.connect(store) as connection:
        row = connection.execute(
            "SELECT artifact_location FROM experiments WHERE name = ?", (experiment_name,)
        ).fetchone()
        if row is None:
            return None
        made_in = PurePosixPath(row[0].removeprefix("file://"))
        here = PurePosixPath(project_root.resolve().as_posix())
        if made_in.name != ARTIFACTS_FOLDER or made_in.parent == here:
            return None
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for prefix in (f"file://{made_in.parent}/", f"{made_in.parent}/"):
            for table, column in _ARTIFACT_LOCATION_COLUMNS:
                if table in tables:
                    connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                        (prefix.replace(str(made_in.parent), str(here)), len(prefix) + 1, len(prefix), prefix),
                    )
    return Path(made_in.parent)


class PrefixedMetricsDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's metrics dataset, named as every other metric of the project: ``<prefix>/<name>``
    (``ingestion/samples_train``) where kedro-mlflow writes ``<prefix>.<name>``; kedro-mlflow sets the prefix to
    the dataset's name when the catalog gives none."""

    def _is_dataset_metric(self, key: str) -> bool:
        return key.startswith(f"{self._prefix}/")

    def _build_args_list_from_metric_item(self, key: str, value: Any) -> Iterator[tuple[str, float, int]]:
        name = f"{self._prefix}/{key}"
        points = [value] if isinstance(value, dict) else value
        if not isinstance(points, list) or not points:
            raise ValueError(f"metric '{name}': expected {{'value', 'step'}} or a non-empty list of them")
        return ((name, point["value"], point["step"]) for point in points)


# ----------------------------------------------------------------------------------- experiments (issue 22)
# What comparisons and sweeps read from and write to the MLflow store. The library (htr_pipeline.experiments)
# gets plain data from here and never imports MLflow.

EVALUATION_SAMPLES_ARTIFACT = "evaluation/samples.parquet"
"""The per-line table of an evaluation run, so a comparison needs nothing but run ids."""
COMPARISON_ARTIFACT_FOLDER = "comparison"
SWEEP_ARTIFACT_FOLDER = "sweep"
VALIDATION_METRIC_PREFIXES = ("val/", "val_degraded/")
SWEEP_TRIAL_TAG = "htr.sweep.trial"
SWEEP_ROLE_TAG = "htr.sweep.role"
MAX_TAG_CHARS = 5000
"""MLflow's limit on a tag value."""


def log_evaluation_samples(samples: pd.DataFrame) -> None:
    """The per-line table (``evaluation_samples``) into the active evaluation run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / PurePosixPath(EVALUATION_SAMPLES_ARTIFACT).name
        samples.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(PurePosixPath(EVALUATION_SAMPLES_ARTIFACT).parent))


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
    """A :class:`htr_pipeline.experiments.runs.ComparedRun` from a run id (a main-job run, an evaluation run, or
    a training run that was evaluated): its per-line table and summary, its training run's logged config and
    validation history, and, for a sweep's trial, its configuration and seed."""
    client = _client(tracking_uri)
    evaluation = _evaluation_run(client, _run_or_error(client, run_id, setting), setting)
    evaluation_id = evaluation.info.run_id
    if not _has_artifact(client, evaluation_id, EVALUATION_SAMPLES_ARTIFACT):
        raise ComparisonSelectionError(
            f"{setting}: the evaluation run {evaluation_id} has no per-line table ({EVALUATION_SAMPLES_ARTIFACT}; "
            "it was evaluated before evaluations logged one): evaluate it again with `kedro run --pipelines="
            f"evaluation --params evaluation.checkpoint={evaluation.data.tags.get('htr.evaluated_run_id', run_id)}`"
        )
    training_id = evaluation.data.tags.get("htr.evaluated_run_id", evaluation_id)
    training = evaluation if training_id == evaluation_id else _run_or_error(client, training_id, setting)
    with tempfile.TemporaryDirectory() as folder:
        samples = pd.read_parquet(_download(client, evaluation_id, EVALUATION_SAMPLES_ARTIFACT, folder))
    tags = training.data.tags
    trial = tags.get(SWEEP_TRIAL_TAG)
    seed = tags.get("htr.sweep.seed")
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
        configuration=tags.get("htr.sweep.configuration"),
        configuration_label=tags.get("htr.sweep.label"),
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
        and "htr.sweep.objective_split" not in run.data.tags
        and run.data.tags.get("htr.sweep.state", "COMPLETE") == "COMPLETE"
    ]


def sweep_trial_run_ids(study_name: str, tracking_uri: str | None = None) -> list[str]:
    """The evaluated runs of a sweep's finished trials, oldest first (``comparison.sweep``)."""
    client = _client(tracking_uri)
    run_ids = tagged_run_ids(f"htr.sweep.study={study_name}", tracking_uri)
    trials = [run_id for run_id in run_ids if client.get_run(run_id).data.tags.get("htr.sweep.state") == "COMPLETE"]
    if not trials:
        raise ComparisonSelectionError(
            f"comparison.sweep: no finished trial of study '{study_name}' is in the MLflow store {client.tracking_uri}"
        )
    return trials


def log_comparison(
    summary: Mapping[str, Any], report: str, table: pd.DataFrame, latex: str, figures: Mapping[str, Any]
) -> None:
    """A comparison into the active run, linked to the runs it compares (and each of them back to it)."""
    mlflow.log_dict(dict(summary), f"{COMPARISON_ARTIFACT_FOLDER}/summary.json")
    mlflow.log_text(report, f"{COMPARISON_ARTIFACT_FOLDER}/report.md")
    mlflow.log_text(table.to_csv(index=False), f"{COMPARISON_ARTIFACT_FOLDER}/table.csv")
    mlflow.log_text(latex, f"{COMPARISON_ARTIFACT_FOLDER}/tables.tex")
    for name, image in figures.items():
        mlflow.log_image(image, artifact_file=f"{COMPARISON_ARTIFACT_FOLDER}/{name}.png")
    compared = [run["run_id"] for run in summary["runs"]]
    mlflow.set_tags(
        {
            "htr.compared_run_ids": ",".join(compared)[:MAX_TAG_CHARS],
            "htr.comparison_baseline_run_id": summary["baseline_run_id"],
        }
    )
    this_run = active_run_id()
    for run_id in compared:
        tag_run(run_id, {"htr.comparison_run_id": this_run})


def log_sweep(summary: Mapping[str, Any], trials: pd.DataFrame) -> None:
    """A sweep worker's report (the whole study as it left it) into its run."""
    mlflow.log_dict(dict(summary), f"{SWEEP_ARTIFACT_FOLDER}/summary.json")
    mlflow.log_text(trials.to_csv(index=False), f"{SWEEP_ARTIFACT_FOLDER}/trials.csv")
    mlflow.set_tags({"htr.sweep.study": summary["study_name"], "htr.sweep.storage": summary["storage"]})
    mlflow.log_metrics({f"sweep/trials_{state.lower()}": count for state, count in summary["counts"].items()})


def active_run_tag(name: str) -> str | None:
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
