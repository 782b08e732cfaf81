"""The sweep as an Optuna study in RDB storage, shared by every worker that names it.

One trial is one configuration of the search space trained with one seed. Workers (``kedro run
--pipelines=sweep`` on one machine or many, against one storage URL) take trials from the study's queue:

- The configurations known in advance (every grid combination, and the baseline: the configured defaults) are
  enqueued once, by the worker that creates the study, each once per seed. ``random`` and ``tpe`` draw
  ``sweep.trials`` configurations from Optuna's sampler; each draw enqueues its other seeds.
- Claiming work (reading the queue, asking Optuna for the next trial) happens under a lock the storage itself
  holds (a file lock beside an sqlite file, an advisory lock in PostgreSQL), so no configuration and seed is
  claimed twice.
- Each running trial beats (Optuna's heartbeat). A trial whose worker died (killed, crashed, machine lost) stops
  beating; the next worker to look marks it failed (Optuna's ``fail_stale_trials``), and a failed trial is
  enqueued again, at most ``sweep.max_retries`` times.
- Pruning (``sweep.pruning``): the executor reports each epoch's validation figure, Optuna's ``MedianPruner``
  decides, and a pruned trial stops and is marked PRUNED.
- Rerunning the command resumes the study: finished trials are kept, missing ones run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from htr_pipeline.config import ProjectConfig, SearchDimension, SweepConfig, flatten_as_logged
from htr_pipeline.experiments.space import (
    baseline_values,
    candidate_values,
    configuration_key,
    configuration_label,
    grid_points,
    trial_config,
)
from htr_pipeline.metric_names import PAGE_MONITOR

logger = logging.getLogger(__name__)

DIRECTIONS: dict[str, list[str]] = {
    "judge_cer": ["minimize"],
    "psnr": ["maximize"],
    "pareto": ["minimize", "maximize"],
    "page_f_measure": ["maximize"],
}
OBJECTIVE_FIGURES: dict[str, list[str]] = {
    "judge_cer": ["judge_cer"],
    "psnr": ["psnr"],
    "pareto": ["judge_cer", "psnr"],
    "page_f_measure": ["page_f_measure"],
}
"""The figures (of :class:`TrialResult`) each objective optimises, in the order of its directions."""
PRUNING_METRICS = {"judge_cer": "val/cer", "psnr": "val/psnr", "page_f_measure": PAGE_MONITOR}
"""The per-epoch validation figure a trial is pruned by (the judge does not read during training: the in-loop
recognizer's validation CER stands in for it)."""

SUPPORTED_STORAGES = ("sqlite", "postgresql")


class SweepStorageError(ValueError):
    """The storage URL names a database the sweep cannot share safely, or a study made with other settings."""


class TrialFailedError(RuntimeError):
    """A trial's run failed; the message says where its log is."""


class TrialStopped(Exception):  # noqa: N818  (not an error: the pruner stopped the trial)
    """The executor stopped a trial because the pruner asked it to."""


# ---------------------------------------------------------------------------------------------- what runs


@dataclass(frozen=True)
class TrialRequest:
    """What one trial trains: a configuration of the space with one seed, as its validated config."""

    number: int
    values: dict[str, Any]
    """The searched keys and their values."""
    seed: int
    configuration: str
    label: str
    """``baseline`` or the values that differ from it."""
    role: Literal["baseline", "grid", "drawn"]
    config: ProjectConfig


@dataclass(frozen=True)
class TrialResult:
    figures: dict[str, float]
    """``judge_cer`` and ``psnr`` on ``sweep.objective_split``; ``page_f_measure`` (the valid split's real pages,
    by the checkpoint the trial kept) where the trial validated on pages."""
    run_id: str


class TrialProgress(Protocol):
    """What an executor tells the study while a trial runs."""

    def started(self, run_id: str) -> None: ...

    def epoch(self, epoch: int, value: float) -> bool:
        """The trial's validation figure at ``epoch``; True: the pruner says stop."""
        ...


Executor = Callable[[TrialRequest, TrialProgress], TrialResult]


# ----------------------------------------------------------------------------------------------- storage


def storage_kind(url: str) -> str:
    return sqlalchemy.engine.make_url(url).get_backend_name()


def shown_url(url: str) -> str:
    """The storage URL without its password, for logs and reports."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def open_storage(url: str, heartbeat_seconds: int) -> optuna.storages.RDBStorage:
    kind = storage_kind(url)
    if kind not in SUPPORTED_STORAGES:
        raise SweepStorageError(
            f"sweep.storage: {shown_url(url)} is a {kind} database; workers share a study through sqlite (one "
            "machine, or a shared folder) or PostgreSQL (a team)"
        )
    if kind == "sqlite":
        database = sqlalchemy.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    # Optuna creates its tables when a storage is first opened: workers started at once on a new database would
    # each create them (UNIQUE constraint failed: alembic_version.version_num), so they open it one at a time.
    with StorageLock(url, "open storage").held(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds, grace_period=3 * heartbeat_seconds
        )


class StorageLock:
    """An exclusive lock named ``name`` that every worker of the storage at ``url`` sees: a file lock beside an
    sqlite file, a session advisory lock in PostgreSQL (released by the server if the worker dies)."""

    def __init__(self, url: str, name: str):
        self._url, self._name = url, name
        self._held: Any = None

    def acquire(self) -> None:
        if self._held is not None:
            return
        if storage_kind(self._url) == "sqlite":
            database = Path(sqlalchemy.engine.make_url(self._url).database or "optuna.db")
            path = database.with_name(f"{database.name}.{hashlib.sha256(self._name.encode()).hexdigest()[:12]}.lock")
            handle = open(path, "a")  # noqa: SIM115  (held until release)
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held = handle
        else:
            connection = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool).connect()
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key()})
            self._held = connection

    def release(self) -> None:
        """Release the lock if held (a second call does nothing)."""
        held, self._held = self._held, None
        if held is None:
            return
        if storage_kind(self._url) == "sqlite":
            fcntl.flock(held, fcntl.LOCK_UN)
            held.close()
        else:
            held.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key()})
            held.close()

    def _key(self) -> int:
        return int.from_bytes(hashlib.sha256(self._name.encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


# ------------------------------------------------------------------------------------------- search space


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def choice_tokens(dimension: SearchDimension) -> list[Any]:
    """Optuna's categorical values for ``choices``: the choices themselves, or their JSON text when some choice
    is a list or a mapping (Optuna takes only None, bool, int, float and str)."""
    choices = list(dimension.choices or [])
    return choices if all(map(_is_primitive, choices)) else [json.dumps(choice, sort_keys=True) for choice in choices]


def to_param(dimension: SearchDimension, value: Any) -> Any:
    if dimension.choices is None or all(map(_is_primitive, dimension.choices)):
        return value
    return json.dumps(value, sort_keys=True)


def suggest(trial: optuna.Trial, key: str, dimension: SearchDimension) -> Any:
    """The value of ``key`` for this trial (the enqueued one, or the sampler's draw)."""
    if dimension.choices is not None:
        token = trial.suggest_categorical(key, choice_tokens(dimension))
        return token if all(map(_is_primitive, dimension.choices)) else json.loads(token)
    if dimension.is_integer:
        return trial.suggest_int(key, dimension.low, dimension.high, step=dimension.step or 1, log=dimension.log)
    return trial.suggest_float(key, dimension.low, dimension.high, step=dimension.step, log=dimension.log)


def in_space(dimension: SearchDimension, value: Any) -> bool:
    """Whether Optuna can hold ``value`` as a parameter of this dimension."""
    if dimension.choices is not None:
        return to_param(dimension, value) in choice_tokens(dimension)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not dimension.low <= value <= dimension.high:
        return False
    return dimension.step is None or any(abs(value - candidate) < 1e-9 for candidate in candidate_values(dimension))


def build_sampler(sweep: SweepConfig, worker_index: int) -> optuna.samplers.BaseSampler:
    """The configured sampler; each worker's draws are seeded apart (the first worker by ``sampler_seed``)."""
    seed = sweep.sampler_seed + worker_index
    if sweep.sampler == "grid":
        space = {
            key: choice_tokens(d) if d.choices is not None else candidate_values(d) for key, d in sweep.space.items()
        }
        return optuna.samplers.GridSampler(space, seed=seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def build_pruner(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    if sweep.pruning is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=sweep.pruning.startup_trials, n_warmup_steps=sweep.pruning.warmup_epochs
    )


# ------------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SweepPlan:
    """A sweep resolved against the project: its settings, the effective config it starts from, the data."""

    sweep: SweepConfig
    base: dict[str, Any]
    """The effective config (every section) trials start from."""
    data_fingerprint: str
    storage_url: str

    @property
    def baseline(self) -> dict[str, Any]:
        return baseline_values(self.base, self.sweep)

    def identity(self) -> dict[str, str]:
        """What a study records of the sweep that made it; a worker with anything else refuses to join."""
        settings = self.sweep.model_dump(
            mode="json", include={"space", "fixed", "sampler", "seeds", "objective", "objective_split", "trials"}
        )
        base = {section: self.base[section] for section in ("training", "evaluation")}
        return {
            "htr.data_fingerprint": self.data_fingerprint,
            "htr.sweep_settings": json.dumps(settings, sort_keys=True),
            "htr.base_settings": json.dumps(base, sort_keys=True),
        }

    def request(self, number: int, values: Mapping[str, Any], seed: int, role: str) -> TrialRequest:
        return TrialRequest(
            number=number,
            values=dict(values),
            seed=seed,
            configuration=configuration_key(values),
            label=configuration_label(values, self.baseline),
            role=role,  # type: ignore[arg-type]
            config=trial_config(self.base, self.sweep, values, seed),
        )


IDENTITY_NAMES = {
    "htr.data_fingerprint": "ingested data (manifest and charset)",
    "htr.sweep_settings": "sweep settings (space, fixed, sampler, seeds, objective, trials)",
    "htr.base_settings": "training or evaluation settings",
}


def _planned_trials(plan: SweepPlan) -> list[tuple[dict[str, Any], int, str]]:
    """(values, seed, role) of every trial known before any runs: the baseline's, and the grid's."""
    baseline = plan.baseline
    points = grid_points(plan.sweep) if plan.sweep.sampler == "grid" else []
    keys = [configuration_key(point) for point in points]
    planned = [] if configuration_key(baseline) in keys else [(baseline, "baseline")]
    planned += [
        (point, "baseline" if key == configuration_key(baseline) else "grid")
        for point, key in zip(points, keys, strict=True)
    ]
    return [(values, seed, role) for values, role in planned for seed in plan.sweep.seeds]


def _enqueue(
    study: optuna.Study, plan: SweepPlan, values: Mapping[str, Any], seed: int, role: str, **extra: Any
) -> None:
    space = plan.sweep.space
    drawable = all(in_space(space[key], value) for key, value in values.items())
    study.enqueue_trial(
        params={key: to_param(space[key], value) for key, value in values.items()} if drawable else {},
        user_attrs={
            "configuration": configuration_key(values),
            "label": configuration_label(values, plan.baseline),
            "values": json.dumps(dict(values), sort_keys=True),
            "seed": seed,
            "role": role,
            "in_space": drawable,
            **extra,
        },
    )


def open_study(plan: SweepPlan, lock: StorageLock) -> tuple[optuna.Study, int]:
    """The study of ``plan`` (created and planned if new; checked against the plan if not) and this worker's
    index among the workers that joined it."""
    sweep = plan.sweep
    storage = open_storage(plan.storage_url, sweep.heartbeat_seconds)
    with lock.held():
        try:
            study = optuna.create_study(
                storage=storage, study_name=sweep.study_name, directions=DIRECTIONS[sweep.objective]
            )
            for name, value in plan.identity().items():
                study.set_user_attr(name, value)
            for values, seed, role in _planned_trials(plan):
                _enqueue(study, plan, values, seed, role)
            logger.info("Created study '%s' in %s", sweep.study_name, shown_url(plan.storage_url))
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=sweep.study_name, storage=storage)
            _check_identity(study, plan)
        worker_index = int(study.user_attrs.get("htr.workers", 0))
        study.set_user_attr("htr.workers", worker_index + 1)
    joined = optuna.load_study(
        study_name=sweep.study_name,
        storage=storage,
        sampler=build_sampler(sweep, worker_index),
        pruner=build_pruner(sweep),
    )
    return joined, worker_index


def _check_identity(study: optuna.Study, plan: SweepPlan) -> None:
    recorded = study.user_attrs
    differing = [
        IDENTITY_NAMES[name] + _changed_keys(recorded.get(name), value)
        for name, value in plan.identity().items()
        if recorded.get(name) != value
    ]
    if differing:
        raise SweepStorageError(
            f"study '{plan.sweep.study_name}' in {shown_url(plan.storage_url)} was started with other "
            f"{' and '.join(differing)}; a study resumes only as it started. Name a new sweep.study_name, or restore "
            "those settings to resume it."
        )


def _changed_keys(recorded: str | None, current: str) -> str:
    """`` (changed: training.device, ...)`` for two JSON settings; nothing for other values."""
    try:
        before, after = flatten_as_logged(json.loads(recorded or "")), flatten_as_logged(json.loads(current))
    except (json.JSONDecodeError, AttributeError):
        return ""
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    return f" (changed: {shown})" if changed else ""


# ------------------------------------------------------------------------------------------------ a worker


@dataclass
class WorkerReport:
    """What one worker did, and the state of the whole study when it left."""

    study_name: str
    storage: str
    worker_index: int
    trials_run_here: list[int] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(trial["state"] for trial in self.trials))


class _Progress:
    def __init__(self, trial: optuna.Trial, sweep: SweepConfig):
        self._trial, self._sweep = trial, sweep

    def started(self, run_id: str) -> None:
        self._trial.set_user_attr("run_id", run_id)

    def epoch(self, epoch: int, value: float) -> bool:
        if self._sweep.pruning is None:
            return False
        self._trial.report(value, step=epoch)
        return self._trial.should_prune()


def run_worker(plan: SweepPlan, execute: Executor, poll_seconds: float | None = None) -> WorkerReport:
    """Work on the study until every trial is finished (done, pruned, or failed past its retries)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial is told in one line below, never as a trace
    started = time.perf_counter()
    claim = StorageLock(plan.storage_url, f"{plan.sweep.study_name}:claim")
    study, worker_index = open_study(plan, claim)
    report = WorkerReport(plan.sweep.study_name, shown_url(plan.storage_url), worker_index)
    wait = poll_seconds if poll_seconds is not None else max(1.0, plan.sweep.heartbeat_seconds / 2)
    while True:
        claim.acquire()
        try:
            _fail_stale_trials(study)
            _requeue_failed(study, plan)
            step = _next_step(study, plan.sweep)
            if step == "run":
                objective = _objective(plan, execute, claim, study, report.trials_run_here)
                study.optimize(objective, n_trials=1, catch=(TrialFailedError,))
        finally:
            claim.release()
        if step == "done":
            break
        if step == "wait":
            time.sleep(wait)
    report.trials = [trial_record(trial) for trial in study.get_trials(deepcopy=False)]
    report.seconds = time.perf_counter() - started
    return report


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _pair(trial: FrozenTrial) -> tuple[str, int] | None:
    if "configuration" not in trial.user_attrs or "duplicate_of" in trial.user_attrs:
        return None
    return trial.user_attrs["configuration"], int(trial.user_attrs["seed"])


def _requeue_failed(study: optuna.Study, plan: SweepPlan) -> None:
    """Enqueue again each configuration and seed whose every trial failed (an error, or a worker that died),
    while it has retries left."""
    attempts: dict[tuple[str, int], list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        pair = _pair(trial)
        if pair is not None:
            attempts.setdefault(pair, []).append(trial)
    for trials in attempts.values():
        if any(trial.state != TrialState.FAIL for trial in trials) or len(trials) > plan.sweep.max_retries:
            continue
        last = trials[-1]
        values = json.loads(last.user_attrs["values"])
        logger.warning(
            "Trial %d (%s, seed %s) failed; running it again (retry %d of %d)",
            last.number,
            last.user_attrs["label"],
            last.user_attrs["seed"],
            len(trials),
            plan.sweep.max_retries,
        )
        _enqueue(study, plan, values, int(last.user_attrs["seed"]), last.user_attrs["role"], retry_of=last.number)


def _next_step(study: optuna.Study, sweep: SweepConfig) -> Literal["run", "wait", "done"]:
    trials = study.get_trials(deepcopy=False)
    if any(trial.state == TrialState.WAITING for trial in trials):
        return "run"
    draws = sum(
        trial.user_attrs.get("role") == "drawn"
        and "retry_of" not in trial.user_attrs
        and trial.user_attrs.get("seed") == sweep.seeds[0]
        for trial in trials
    )
    if sweep.sampler != "grid" and draws < (sweep.trials or 0):
        return "run"
    if any(trial.state == TrialState.RUNNING for trial in trials):
        return "wait"  # another worker's trial may still fail and come back to the queue
    return "done"


def _objective(
    plan: SweepPlan, execute: Executor, claim: StorageLock, study: optuna.Study, ran_here: list[int]
) -> Callable[[optuna.Trial], Any]:
    sweep = plan.sweep

    def objective(trial: optuna.Trial) -> Any:
        ran_here.append(trial.number)
        if "configuration" in trial.user_attrs:
            values = json.loads(trial.user_attrs["values"])
            if trial.user_attrs.get("in_space"):
                for key, dimension in sweep.space.items():
                    suggest(trial, key, dimension)  # records the enqueued values as the trial's params
            seed, role = int(trial.user_attrs["seed"]), trial.user_attrs["role"]
        else:
            values = {key: suggest(trial, key, dimension) for key, dimension in sweep.space.items()}
            seed, role = sweep.seeds[0], "drawn"
            _record_draw(study, plan, trial, values)
        claim.release()  # the trial is claimed: other workers may claim theirs while this one trains
        request = plan.request(trial.number, values, seed, role)
        logger.info("Trial %d: %s, seed %d", trial.number, request.label, seed)
        try:
            result = execute(request, _Progress(trial, sweep))
        except TrialStopped:
            logger.info("Trial %d pruned: behind the median of the other trials", trial.number)
            raise optuna.TrialPruned(f"trial {trial.number}: behind the median at the same epoch") from None
        except TrialFailedError as error:
            logger.error("Trial %d failed: %s", trial.number, error)
            raise
        trial.set_user_attr("run_id", result.run_id)
        trial.set_user_attr("figures", result.figures)
        return [result.figures[name] for name in OBJECTIVE_FIGURES[sweep.objective]]

    return objective


def _record_draw(study: optuna.Study, plan: SweepPlan, trial: optuna.Trial, values: Mapping[str, Any]) -> None:
    """A fresh draw of the sampler: name its configuration, skip it if already tried, enqueue its other seeds."""
    key = configuration_key(values)
    for name, value in (
        ("configuration", key),
        ("label", configuration_label(values, plan.baseline)),
        ("values", json.dumps(dict(values), sort_keys=True)),
        ("seed", plan.sweep.seeds[0]),
        ("role", "drawn"),
        ("in_space", True),
    ):
        trial.set_user_attr(name, value)
    earlier = [
        other.number
        for other in study.get_trials(deepcopy=False)
        if other.number != trial.number
        and other.user_attrs.get("configuration") == key
        and "duplicate_of" not in other.user_attrs
    ]
    if earlier:
        trial.set_user_attr("duplicate_of", earlier[0])
        raise optuna.TrialPruned(f"the sampler drew again the configuration of trial {earlier[0]}: skipped")
    for seed in plan.sweep.seeds[1:]:
        _enqueue(study, plan, values, seed, "drawn")


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data: the sweep's report and its comparison read these."""
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        "label": attrs.get("label"),
        "configuration": attrs.get("configuration"),
        "values": json.loads(attrs["values"]) if "values" in attrs else dict(trial.params),
        "seed": attrs.get("seed"),
        "role": attrs.get("role"),
        "run_id": attrs.get("run_id"),
        "figures": attrs.get("figures"),
        "objective": trial.values,
        "retry_of": attrs.get("retry_of"),
        "duplicate_of": attrs.get("duplicate_of"),
        "pruned_at_epoch": trial.last_step
        if trial.state == TrialState.PRUNED and "duplicate_of" not in attrs
        else None,
        "seconds": trial.duration.total_seconds() if trial.duration is not None else None,
    }
