"""The MLflow store of the project: the runs in it and what they say of each other.

Reading a training run back (for diagnostics, evaluation and inference), the tags that link runs, run states
true to what happened to their process (``KILLED``, ``FINISHED``), the lock under which an sqlite store is
created, and a copied project's store pointed at its own artifacts. Everything goes through ``MlflowClient``
but :func:`_rewrite_artifact_locations`, the one change MLflow has no API for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow

from htr_pipeline.project_paths import resolve_in_project

CHECKPOINT_FOLDER_TAG = "htr.checkpoint_folder"
"""Tag on a training run naming the folder of its checkpoints (evaluation finds them by run id)."""
EVALUATION_RUN_TAG = "htr.evaluation_run_id"
"""Set on a training run: the run that last evaluated it."""
EVALUATED_RUN_TAG = "htr.evaluated_run_id"
"""Set on an evaluation run: the training run it evaluated (``evaluation_summary``'s ``link`` in the catalog)."""
EVALUATION_SUMMARY_ARTIFACT = "evaluation/summary.json"
"""Where an evaluation run keeps its summary (``conf/base/catalog.yml``, ``evaluation_summary``)."""


MAX_TAG_VALUE_CHARS = 8000
"""MLflow's limit on a tag's value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``)."""


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    """Set ``tags`` on ``run_id`` in the store this session tracks into (the run need not be active)."""
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def link_runs(other_run_ids: Sequence[str], tag: str, back_tag: str, this_run_id: str, same_store: bool = True) -> None:
    """Tag this run with the runs it concerns (``tag``), and each of them with this one (``back_tag``): an
    evaluation and the training it evaluated, a diagnostics run and the run it audited, a comparison and the runs
    it compares (``tag`` then holds their ids, comma-separated). A run in another store (a diagnostics of
    ``diagnostics.tracking_uri``) is tagged on this side only."""
    tag_run(this_run_id, {tag: _tag_value_of_ids(other_run_ids)})
    if same_store:
        for other_run_id in other_run_ids:
            tag_run(other_run_id, {back_tag: this_run_id})


def _tag_value_of_ids(run_ids: Sequence[str]) -> str:
    """Run ids comma-separated; too many for one tag (MLflow keeps 8,000 characters), their count, said so."""
    joined = ",".join(run_ids)
    if len(joined) <= MAX_TAG_VALUE_CHARS:
        return joined
    return f"{len(run_ids)} runs: too many ids for one tag, the run's saved outputs list them"


def checkpoint_folder_of_run(run_id: str, config_key: str, tracking_uri: str | None = None) -> str:
    """The checkpoint folder of a training run (in ``tracking_uri``, default: the project's store);
    ``config_key`` names the setting that gave the run id."""
    try:
        run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise RunNotFoundError(
            f"{config_key}: '{run_id}' is neither a .pt file nor a run of the MLflow store "
            f"{tracking_uri or mlflow.get_tracking_uri()} ({error.message}); check the run id in the MLflow UI, "
            "or name a checkpoint file"
        ) from None
    folder = run.data.tags.get(CHECKPOINT_FOLDER_TAG)
    if folder is None:
        raise RunNotFoundError(
            f"{config_key}: MLflow run {run_id} has no '{CHECKPOINT_FOLDER_TAG}' tag: it trained no GAN; name a "
            "training run (its run name contains 'training') or a checkpoint file"
        )
    return str(resolve_in_project(folder))


GRADIENT_REPORT_FOLDER = "gradients"
"""Artifact folder of a training run's per-epoch gradient summaries (``gradients/epoch_NNN.json``)."""


@dataclass(frozen=True)
class LoggedTrainingRun:
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


def read_training_run(run_id: str, tracking_uri: str) -> LoggedTrainingRun:
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
    return LoggedTrainingRun(
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
    database = sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(f"{database.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


ARTIFACTS_FOLDER = "mlartifacts"
"""The project's artifact folder (``conf/base/mlflow.yml``), beside ``mlflow.db``."""


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of an sqlite store (``sqlite:///<absolute path>``); None for any other store."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def move_artifact_locations(tracking_uri: str, project_root: Path, experiment_name: str) -> Path | None:
    """Point a copied project's store at its own ``mlartifacts``: returns the folder it was copied from, or None.

    MLflow writes every artifact location as an absolute path. A project copied elsewhere (laptop to GPU server)
    would then read artifacts from, and log new runs into, the original. The project folder the store was made
    in is read from ``experiment_name``'s location (``<root>/mlartifacts``); every location under that root is
    rewritten to the same place under ``project_root``. Only an sqlite store that exists is looked at.
    """
    database = sqlite_database(tracking_uri)
    if database is None or not database.is_file():
        return None
    experiment = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    made_in = PurePosixPath(experiment.artifact_location.removeprefix("file://"))
    here = PurePosixPath(project_root.resolve().as_posix())
    if made_in.name != ARTIFACTS_FOLDER or made_in.parent == here:
        return None
    _rewrite_artifact_locations(database, made_in.parent, here)
    return Path(made_in.parent)


_ARTIFACT_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)
"""Where an MLflow sqlite store keeps absolute artifact locations."""


def _rewrite_artifact_locations(database: Path, old_root: PurePosixPath, new_root: PurePosixPath) -> None:
    """Every artifact location under ``old_root`` (``file://`` URI or plain path) moved under ``new_root``.

    Raw SQL on MLflow's schema, because MLflow has no API that changes an artifact location once written (an
    experiment's, a run's, a logged model's, a model version's). Tables a store does not have are skipped.
    """
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for prefix in (f"file://{old_root}/", f"{old_root}/"):
            moved = prefix.replace(str(old_root), str(new_root))
            for table, column in _ARTIFACT_LOCATION_COLUMNS:
                if table in tables:
                    connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                        (moved, len(prefix) + 1, len(prefix), prefix),
                    )
