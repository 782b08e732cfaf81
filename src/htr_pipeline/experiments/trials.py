"""How a trial runs: ``kedro run`` processes of this project, with the trial's settings, tracked as MLflow runs
nested under the sweep's run.

A trial trains and evaluates exactly as ``kedro run`` would with its settings, because it is a ``kedro run``: a
fresh process given a run-config file (``kedro run --config``) that holds the trial's ``training`` and
``evaluation`` sections in full and pins the ingested data version the sweep started from. Stage 1 (the
recognizer, the judge, any baseline recognizers) is trained once per stage-1 setting (:func:`.space.stage_one_key`)
by a ``kedro run`` of those two nodes alone; every trial that shares the setting starts at ``train_gan`` with those
versions loaded (``--from-nodes``, ``--load-versions``). Which versions hold which stage 1 is kept in
``stage_one.json`` in the sweep's work folder.

The trial's figures are read back from its MLflow run while it trains (the per-epoch validation figure, for
pruning) and after (the evaluation summary). When the objective reads another split than the comparison
(``sweep.objective_split``), a second ``kedro run`` evaluates the trial's checkpoint there.

The child processes die with their worker (Linux), so a killed worker leaves no orphan training.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from htr_pipeline.config import SweepConfig
from htr_pipeline.experiments.figures import RESTORED
from htr_pipeline.experiments.run_tags import (
    CONFIGURATION_LABEL_TAG,
    CONFIGURATION_TAG,
    OBJECTIVE_SPLIT_TAG,
    PRUNED_AT_EPOCH_TAG,
    ROLE_TAG,
    SEED_TAG,
    STAGE_ONE_TAG,
    STUDY_TAG,
    TRIAL_STATE_TAG,
    TRIAL_TAG,
)
from htr_pipeline.experiments.space import stage_one_key, trial_parameters
from htr_pipeline.experiments.study import (
    OBJECTIVE_FIGURES,
    PRUNING_METRICS,
    TrialFailedError,
    TrialProgress,
    TrialRequest,
    TrialResult,
    TrialStopped,
)
from htr_pipeline.metric_names import MONITOR_MODES, PAGE_MONITOR
from htr_pipeline.training.early_stopping import best_epoch_of
from htr_pipeline.training.recognizer_training import JUDGE_RECOGNIZER

logger = logging.getLogger(__name__)

DATA_DATASETS = ("manifest", "line_images", "charset")
"""The ingested data a trial reads, pinned to the version the sweep started from."""
STAGE_ONE_DATASETS = ("in_loop_recognizer", "reference_recognizers")
STAGE_ONE_NODES = ("pretrain_recognizer", "train_reference_recognizers")
GAN_NODE = "train_gan"
SESSION_VERSION_TAG = "run_id"
"""kedro-mlflow tags each run with its Kedro session id, which is the save version of everything it wrote."""

OBJECTIVE_COLUMNS = {"judge_cer": f"cer_corpus_{RESTORED}", "psnr": f"psnr_db_mean_{RESTORED}"}
"""Where each objective figure is in an evaluation summary (under the judge's section)."""
LOG_TAIL_LINES = 15
STOP_GRACE_SECONDS = 20.0


class RunStore(Protocol):
    """The MLflow store, as the sweep uses it (:class:`htr_pipeline.tracking.SweepRunStore`)."""

    def create_run(self, name: str, parent_run_id: str | None, tags: Mapping[str, str]) -> str: ...

    def metric_history(self, run_id: str, metric: str) -> list[tuple[int, float]]: ...

    def tag(self, run_id: str, name: str) -> str | None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def end_run(self, run_id: str, status: str) -> None: ...

    def evaluation_summary(self, run_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class KedroProject:
    """Where and how trials' ``kedro run`` processes start."""

    path: Path
    env: str | None
    work_folder: Path
    """The sweep's folder: ``stage_one.json`` and one folder per trial (its run config and log)."""
    data_versions: Mapping[str, str]
    """The version of each of :data:`DATA_DATASETS` to read."""
    parent_run_id: str | None
    """The sweep's MLflow run: every trial's run is nested under it."""
    poll_seconds: float = 5.0


@dataclass(frozen=True)
class KedroRun:
    """One ``kedro run`` of a trial, as its run-config file says it."""

    pipelines: Sequence[str]
    params: Mapping[str, Any]
    load_versions: Mapping[str, str]
    from_nodes: str | None = None
    node_names: Sequence[str] = ()

    def config(self, env: str | None) -> dict[str, Any]:
        """The ``run:`` section of a ``kedro run --config`` file: option values as the command line spells them
        (comma-separated names), the parameters as a mapping."""
        run: dict[str, Any] = {
            "pipelines": ",".join(self.pipelines),
            "params": dict(self.params),
            "load_versions": ",".join(f"{name}:{version}" for name, version in self.load_versions.items()),
        }
        if self.from_nodes:
            run["from_nodes"] = self.from_nodes
        if self.node_names:
            run["node_names"] = ",".join(self.node_names)
        if env:
            run["env"] = env
        return {"run": run}


def _die_with_parent() -> None:  # pragma: no cover  (runs in the child, between fork and exec)
    """Linux: the child gets SIGKILL when the worker that started it dies, so no training outlives its worker."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class KedroTrialExecutor:
    """Runs trials as ``kedro run`` processes of :class:`KedroProject` (the sweep's ``Executor``)."""

    def __init__(self, project: KedroProject, store: RunStore, sweep: SweepConfig, data_fingerprint: str):
        self.project = project
        self.store = store
        self.sweep = sweep
        self.data_fingerprint = data_fingerprint
        self.stage_one_trainings = 0
        """How many times this executor trained stage 1 (the others reused one)."""
        self._stage_one_failures: dict[str, str] = {}
        """Stage-1 settings whose training failed here, and why: trials that need them fail at once rather than
        train it again (a recognizer that does not read will not read on the next try either)."""

    def __call__(self, request: TrialRequest, progress: TrialProgress) -> TrialResult:
        stage_one = self.stage_one_versions(request)
        folder = self.project.work_folder / f"trial_{request.number:04d}"
        tags = self._trial_tags(request)
        run_id = self.store.create_run(_trial_name(request), self.project.parent_run_id, tags)
        progress.started(run_id)
        trial_run = KedroRun(
            pipelines=("training", "evaluation"),
            params=trial_parameters(request.config),
            load_versions={**self.project.data_versions, **stage_one},
            from_nodes=GAN_NODE,
        )
        metric = PRUNING_METRICS.get(self.sweep.objective)
        epochs = request.config.training.epochs
        try:
            self._run(trial_run, run_id, folder / "trial", progress=progress, metric=metric, epochs=epochs)
            self.store.set_tags(run_id, {**tags, "mlflow.runName": _trial_name(request)})
            figures_run = run_id
            if self.sweep.objective_split != request.config.evaluation.split:
                figures_run = self._objective_evaluation(request, run_id, stage_one, folder)
            figures = {**self._figures(figures_run), **self._page_figures(run_id, request)}
        except TrialStopped:
            self.store.set_tags(run_id, {TRIAL_STATE_TAG: "PRUNED"})
            raise
        except Exception:
            self.store.set_tags(run_id, {TRIAL_STATE_TAG: "FAIL"})
            raise
        self.store.set_tags(run_id, {TRIAL_STATE_TAG: "COMPLETE"})
        return TrialResult(figures=figures, run_id=run_id)

    # ------------------------------------------------------------------------------------------- stage 1

    def stage_one_versions(self, request: TrialRequest) -> dict[str, str]:
        """The versions of stage 1's outputs for this trial's stage-1 setting, trained now if none exists."""
        key = stage_one_key(request.config, self.data_fingerprint)
        if key in self._stage_one_failures:
            raise TrialFailedError(f"stage 1 {key} failed earlier in this worker: {self._stage_one_failures[key]}")
        index = self.project.work_folder.parent / "stage_one.json"
        with _file_lock(index.with_suffix(f".{key}.lock")):
            known = _read_index(index).get(key)
            if known is not None:
                logger.info("Stage 1 %s: reusing the recognizers of version %s", key, known["version"])
                return {name: known["version"] for name in STAGE_ONE_DATASETS}
            logger.info(
                "Stage 1 %s: training the recognizer and the judge (once for every trial that shares them)", key
            )
            tags = {STUDY_TAG: self.sweep.study_name, STAGE_ONE_TAG: key}
            run_id = self.store.create_run(f"stage 1 {key}", self.project.parent_run_id, tags)
            stage_run = KedroRun(
                pipelines=("training",),
                params={"training": trial_parameters(request.config)["training"]},
                load_versions=self.project.data_versions,
                node_names=STAGE_ONE_NODES,
            )
            try:
                self._run(stage_run, run_id, self.project.work_folder / f"stage_one_{key}")
            except TrialFailedError as error:
                self._stage_one_failures[key] = str(error).splitlines()[0]
                raise
            self.stage_one_trainings += 1
            version = self.store.tag(run_id, SESSION_VERSION_TAG)
            if version is None:
                raise TrialFailedError(
                    f"stage 1 run {run_id} has no '{SESSION_VERSION_TAG}' tag: which version it wrote is unknown"
                )
            with _file_lock(index.with_suffix(".lock")):
                entries = _read_index(index)
                entries[key] = {"version": version, "run_id": run_id, "data_fingerprint": self.data_fingerprint}
                index.write_text(json.dumps(entries, indent=2))
            return {name: version for name in STAGE_ONE_DATASETS}

    # -------------------------------------------------------------------------------------- objective split

    def _objective_evaluation(
        self, request: TrialRequest, trial_run_id: str, stage_one: Mapping[str, str], folder: Path
    ) -> str:
        """Evaluate the trial's checkpoint on the objective's split; return that evaluation's run."""
        version = self.store.tag(trial_run_id, SESSION_VERSION_TAG)
        if version is None:
            raise TrialFailedError(
                f"trial run {trial_run_id} has no '{SESSION_VERSION_TAG}' tag: its outputs are unknown"
            )
        evaluation = {
            **trial_parameters(request.config)["evaluation"],
            "split": self.sweep.objective_split,
            "checkpoint": trial_run_id,
            "log_models": False,
            "register_model": None,
        }
        tags = {**self._trial_tags(request), OBJECTIVE_SPLIT_TAG: self.sweep.objective_split}
        name = f"{_trial_name(request)}: objective on {self.sweep.objective_split}"
        run_id = self.store.create_run(name, trial_run_id, tags)
        objective_run = KedroRun(
            pipelines=("evaluation",),
            params={"evaluation": evaluation},
            load_versions={**self.project.data_versions, **stage_one, "training_summary": version},
        )
        self._run(objective_run, run_id, folder / "objective")
        return run_id

    def _figures(self, run_id: str) -> dict[str, float]:
        """The objective figures of an evaluation run: the judge's CER of restored lines, their mean PSNR."""
        summary = self.store.evaluation_summary(run_id)
        figures = {"psnr": float(summary[summary["headline_recognizer"]][OBJECTIVE_COLUMNS["psnr"]])}
        if JUDGE_RECOGNIZER in summary.get("recognizers", []):
            figures["judge_cer"] = float(summary[JUDGE_RECOGNIZER][OBJECTIVE_COLUMNS["judge_cer"]])
        elif "judge_cer" in OBJECTIVE_FIGURES[self.sweep.objective]:
            raise TrialFailedError(f"the evaluation of run {run_id} has no judge: the objective reads the judge's CER")
        return figures

    def _page_figures(self, run_id: str, request: TrialRequest) -> dict[str, float]:
        """``page_f_measure``: the valid split's real pages restored by the checkpoint the trial kept (its
        ``val/page_f_measure`` at the epoch its monitor chose), where the trial validated on pages."""
        monitor = request.config.training.monitor
        kept = best_epoch_of(self.store.metric_history(run_id, monitor), MONITOR_MODES[monitor])
        pages = dict(self.store.metric_history(run_id, PAGE_MONITOR))
        if kept in pages:
            return {"page_f_measure": pages[kept]}
        if "page_f_measure" in OBJECTIVE_FIGURES[self.sweep.objective]:
            raise TrialFailedError(
                f"trial run {run_id} logged no {PAGE_MONITOR} at the epoch its {monitor} kept ({kept}): the "
                "objective reads the valid split's real pages (data.real_paper needs a page_pairs folder whose "
                "pages the split gave to valid)"
            )
        return {}

    # --------------------------------------------------------------------------------------- processes

    def _run(
        self,
        run: KedroRun,
        run_id: str,
        folder: Path,
        progress: TrialProgress | None = None,
        metric: str | None = None,
        epochs: int | None = None,
    ) -> None:
        """Run ``run`` in a ``kedro run`` process logging into MLflow run ``run_id``; report each epoch."""
        folder.mkdir(parents=True, exist_ok=True)
        config_file, log_file = folder / "run.yml", folder / "kedro.log"
        config_file.write_text(yaml.safe_dump(run.config(self.project.env), sort_keys=False))
        environment = {**os.environ, "MLFLOW_RUN_ID": run_id, "KEDRO_DISABLE_TELEMETRY": "true"}
        command = [sys.executable, "-m", "kedro", "run", "--config", str(config_file)]
        with open(log_file, "w") as log:
            process = subprocess.Popen(
                command,
                cwd=self.project.path,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            reported = 0
            while process.poll() is None:
                time.sleep(self.project.poll_seconds)
                if progress is None or metric is None:
                    continue
                for epoch, value in self.store.metric_history(run_id, metric):
                    if epoch <= reported:
                        continue
                    reported = epoch
                    logger.info("  %s epoch %d/%s: %s %.4f", folder.parent.name, epoch, epochs, metric, value)
                    if progress.epoch(epoch, value):
                        _stop(process)
                        self.store.end_run(run_id, "KILLED")
                        self.store.set_tags(run_id, {PRUNED_AT_EPOCH_TAG: str(epoch)})
                        raise TrialStopped
        if process.returncode != 0:
            self.store.end_run(run_id, "FAILED")
            raise TrialFailedError(
                f"`kedro run --config {_relative(config_file, self.project.path)}` exited with status "
                f"{process.returncode}; its log is {_relative(log_file, self.project.path)}:\n{_tail(log_file)}"
            )

    def _trial_tags(self, request: TrialRequest) -> dict[str, str]:
        return {
            STUDY_TAG: self.sweep.study_name,
            TRIAL_TAG: str(request.number),
            CONFIGURATION_TAG: request.configuration,
            CONFIGURATION_LABEL_TAG: request.label,
            SEED_TAG: str(request.seed),
            ROLE_TAG: request.role,
        }


def _trial_name(request: TrialRequest) -> str:
    return f"trial {request.number}: {request.label}, seed {request.seed}"


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:] if line.strip())


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _read_index(index: Path) -> dict[str, Any]:
    return json.loads(index.read_text()) if index.is_file() else {}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` among the processes of this machine (and of a shared folder's machines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
