"""The sweep's Optuna study: every configuration and seed done once, resumed by rerunning, failed trials retried,
duplicate draws skipped, pruning from per-epoch figures, and workers sharing one study through sqlite or
PostgreSQL, one of them killed with SIGKILL mid-trial.

The trials here are quick stand-ins (the executor is the study's only link to training); the sweep pipeline's
own test runs real ``kedro run`` trials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest

from htr_pipeline.config import SweepConfig, effective_parameters, validate_parameters
from htr_pipeline.experiments.study import (
    SweepPlan,
    SweepStorageError,
    TrialFailedError,
    TrialResult,
    TrialStopped,
    open_storage,
    run_worker,
)
from htr_pipeline.experiments.sweep_report import finished_more_than_once, sweep_summary, trials_frame
from tests.conftest import PROJECT_ROOT, small_synthetic_parameters

POSTGRES_VARIABLE = "HTR_TEST_POSTGRES_URL"
"""A PostgreSQL database the tests may create tables in (``.ci/run`` starts a server and sets it)."""


def _plan(storage: str, study: str = "study", **settings) -> SweepPlan:
    sweep = SweepConfig.model_validate(
        {
            "study_name": study,
            "space": {"training.losses.weights.ctc": {"choices": [1.0, 3.0]}},
            "seeds": [1, 2],
            "heartbeat_seconds": 1,
            **settings,
        }
    )
    base = effective_parameters(validate_parameters(small_synthetic_parameters()))
    return SweepPlan(sweep, base, "fingerprint", storage)


class StandIn:
    """Trains nothing: records what it was asked to run, reports epochs, returns figures from the settings."""

    def __init__(self, fail_once=(), fail_always=(), epochs: int = 0, seconds: float = 0.0):
        self.calls: list[tuple[float, int]] = []
        self.fail_once, self.fail_always = set(fail_once), set(fail_always)
        self.epochs = epochs
        self.seconds = seconds

    def __call__(self, request, progress):
        ctc = request.config.training.losses.weights.ctc
        key = (ctc, request.seed)
        self.calls.append(key)
        progress.started(f"run-{request.number}")
        if key in self.fail_once | self.fail_always:
            self.fail_once.discard(key)
            raise TrialFailedError(f"stand-in failure of {key}")
        for epoch in range(1, self.epochs + 1):
            if progress.epoch(epoch, ctc / epoch):
                raise TrialStopped
        time.sleep(self.seconds)
        return TrialResult({"judge_cer": 0.5 / ctc + 0.01 * request.seed, "psnr": 20.0 + ctc}, f"run-{request.number}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'optuna.db').as_posix()}"


def _done(report) -> Counter:
    return Counter(
        (json.loads(trial["configuration"]).get("training.losses.weights.ctc"), trial["seed"])
        for trial in report.trials
        if trial["state"] in ("COMPLETE", "PRUNED") and trial["duplicate_of"] is None
    )


def test_a_grid_runs_every_configuration_once_per_seed_and_a_rerun_resumes(sqlite_url):
    plan = _plan(sqlite_url)
    executor = StandIn()
    report = run_worker(plan, executor, poll_seconds=0.1)
    assert sorted(executor.calls) == [(1.0, 1), (1.0, 2), (3.0, 1), (3.0, 2)]
    assert _done(report) == Counter({(1.0, 1): 1, (1.0, 2): 1, (3.0, 1): 1, (3.0, 2): 1})
    roles = {(trial["label"], trial["seed"]): trial["role"] for trial in report.trials}
    assert roles[("baseline", 1)] == "baseline" and roles[("training.losses.weights.ctc=3.0", 2)] == "grid"

    again = StandIn()
    resumed = run_worker(plan, again, poll_seconds=0.1)
    assert again.calls == [] and resumed.counts == {"COMPLETE": 4}

    summary = sweep_summary(resumed, plan.sweep, stage_one_trainings=0)
    assert summary["best"] == [
        "trial 2 (training.losses.weights.ctc=3.0, seed 1): judge CER 0.1767, PSNR 23.00 dB; MLflow run run-2"
    ]
    assert summary["failed_configurations"] == [] and summary["finished_more_than_once"] == []
    assert list(trials_frame(resumed)["state"]) == ["COMPLETE"] * 4


def test_the_baseline_runs_beside_a_grid_that_leaves_it_out(sqlite_url):
    plan = _plan(sqlite_url, space={"training.losses.weights.ctc": {"choices": [2.0, 3.0]}})
    executor = StandIn()
    report = run_worker(plan, executor, poll_seconds=0.1)
    assert sorted(executor.calls) == [(1.0, 1), (1.0, 2), (2.0, 1), (2.0, 2), (3.0, 1), (3.0, 2)]
    assert {trial["label"] for trial in report.trials if trial["role"] == "baseline"} == {"baseline"}


def test_a_study_of_seeds_keeps_the_seed_whose_valid_pages_score_best(sqlite_url):
    """The configured settings, once per seed, chosen by the valid split's real pages (maximised), the figures the
    seed-42 to 44 runs of the README logged."""
    plan = _plan(sqlite_url, space={}, seeds=[42, 43, 44], objective="page_f_measure")
    pages = {42: 86.62, 43: 87.37, 44: 65.30}
    seeds_run: list[int] = []

    def train(request, progress):
        seeds_run.append(request.seed)
        assert request.config.training.gan_seed == request.seed
        progress.started(f"run-{request.number}")
        figures = {"judge_cer": 0.40, "psnr": 18.5, "page_f_measure": pages[request.seed]}
        return TrialResult(figures, f"run-{request.number}")

    report = run_worker(plan, train, poll_seconds=0.1)
    assert sorted(seeds_run) == [42, 43, 44]
    assert {(trial["label"], trial["role"]) for trial in report.trials} == {("baseline", "baseline")}
    summary = sweep_summary(report, plan.sweep, stage_one_trainings=1)
    (best,) = summary["best"]
    assert best.endswith(
        "(baseline, seed 43): valid pages F-measure 87.37, judge CER 0.4000, PSNR 18.50 dB; MLflow run run-1"
    )
    frame = trials_frame(report).set_index("seed")
    assert frame.loc[44, "page_f_measure"] == pytest.approx(65.30)


def test_a_failed_trial_is_run_again_until_its_retries_are_spent(sqlite_url, tmp_path):
    report = run_worker(_plan(sqlite_url), StandIn(fail_once={(3.0, 1)}), poll_seconds=0.1)
    states = [(trial["label"], trial["seed"], trial["state"]) for trial in report.trials]
    assert ("training.losses.weights.ctc=3.0", 1, "FAIL") in states
    assert _done(report)[(3.0, 1)] == 1
    assert next(trial for trial in report.trials if trial["retry_of"] is not None)["state"] == "COMPLETE"

    always = StandIn(fail_always={(3.0, 2)})
    other = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    plan = _plan(other, max_retries=1)
    failed = run_worker(plan, always, poll_seconds=0.1)
    assert always.calls.count((3.0, 2)) == 2  # the first try and one retry
    summary = sweep_summary(failed, plan.sweep, 0)
    assert summary["failed_configurations"] == [{"label": "training.losses.weights.ctc=3.0", "seed": 2, "failures": 2}]


def test_a_sampler_that_draws_a_configuration_again_does_not_run_it_twice(sqlite_url):
    plan = _plan(sqlite_url, sampler="tpe", trials=5, seeds=[1])
    executor = StandIn()
    report = run_worker(plan, executor, poll_seconds=0.1)
    assert sorted(set(executor.calls)) == sorted(executor.calls)  # nothing ran twice
    assert set(executor.calls) <= {(1.0, 1), (3.0, 1)}
    assert finished_more_than_once(report.trials) == []
    draws = [trial for trial in report.trials if trial["role"] == "drawn"]
    assert len(draws) == 5 and any(trial["duplicate_of"] is not None for trial in draws)


def test_a_trial_behind_the_median_is_pruned_and_marked(sqlite_url):
    plan = _plan(
        sqlite_url,
        space={"training.losses.weights.ctc": {"choices": [1.0, 2.0, 4.0, 8.0]}},
        seeds=[1],
        pruning={"startup_trials": 2, "warmup_epochs": 0},
    )
    report = run_worker(plan, StandIn(epochs=3), poll_seconds=0.1)
    pruned = [trial for trial in report.trials if trial["state"] == "PRUNED"]
    assert pruned and all(trial["pruned_at_epoch"] == 1 for trial in pruned)
    assert {trial["label"] for trial in pruned} <= {
        "training.losses.weights.ctc=4.0",
        "training.losses.weights.ctc=8.0",
    }


def test_a_study_resumes_only_with_the_settings_it_started_with(sqlite_url):
    run_worker(_plan(sqlite_url), StandIn(), poll_seconds=0.1)
    changed = _plan(sqlite_url, seeds=[1, 2, 3])
    with pytest.raises(SweepStorageError, match=r"was started with other sweep settings .*\(changed: seeds\)"):
        run_worker(changed, StandIn(), poll_seconds=0.1)
    other_base = _plan(sqlite_url)
    other_base.base["training"]["device"] = "cpu"
    with pytest.raises(SweepStorageError, match=r"training or evaluation settings \(changed: training\.device\)"):
        run_worker(other_base, StandIn(), poll_seconds=0.1)
    with pytest.raises(SweepStorageError, match=r"sqlite .*or PostgreSQL"):
        open_storage("mysql://user@host/database", 1)


# ------------------------------------------------------------------------------ several workers, one killed


def worker_main(arguments: str) -> None:
    """A worker process of the kill test: stand-in trials that write marker files and take a few seconds."""
    settings = json.loads(arguments)
    markers = Path(settings["markers"])

    class Marking(StandIn):
        def __call__(self, request, progress):
            ctc = request.config.training.losses.weights.ctc
            name = f"{ctc}-{request.seed}-{os.getpid()}"
            (markers / f"started-{name}").touch()
            result = super().__call__(request, progress)
            (markers / f"done-{name}").touch()
            return result

    run_worker(_plan(settings["storage"], settings["study"]), Marking(seconds=settings["seconds"]), poll_seconds=0.2)


def _start_worker(storage: str, study: str, markers: Path, log: Path) -> subprocess.Popen:
    arguments = json.dumps({"storage": storage, "study": study, "markers": str(markers), "seconds": 4.0})
    code = "import sys; from tests.experiments.test_study import worker_main; worker_main(sys.argv[1])"
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-c", code, arguments],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _two_workers_one_killed(storage: str, tmp_path: Path) -> None:
    study = f"kill-{uuid.uuid4().hex[:8]}"
    markers = tmp_path / "markers"
    markers.mkdir()
    first = _start_worker(storage, study, markers, tmp_path / "first.log")
    second = _start_worker(storage, study, markers, tmp_path / "second.log")
    try:
        started_by = lambda pid: [path.name for path in markers.glob(f"started-*-{pid}")]  # noqa: E731
        _wait_for(lambda: started_by(first.pid) and started_by(second.pid), 120, "both workers to start a trial")
        killed_trial = started_by(first.pid)[-1]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert second.wait(timeout=180) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        for worker in (first, second):
            if worker.poll() is None:
                worker.kill()
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    complete = Counter(
        (trial.user_attrs["label"], trial.user_attrs["seed"]) for trial in trials if trial.state.name == "COMPLETE"
    )
    assert complete == Counter(
        {
            ("baseline", 1): 1,
            ("baseline", 2): 1,
            ("training.losses.weights.ctc=3.0", 1): 1,
            ("training.losses.weights.ctc=3.0", 2): 1,
        }
    ), complete
    failed = [trial for trial in trials if trial.state.name == "FAIL"]
    assert len(failed) == 1  # the killed worker's trial, marked failed by the survivor
    configuration = killed_trial.removeprefix("started-").rsplit("-", 1)[0]
    assert not (markers / f"done-{configuration}-{first.pid}").exists()
    assert (markers / f"done-{configuration}-{second.pid}").exists()  # run again by the survivor


def test_two_workers_share_an_sqlite_study_and_one_killed_mid_trial_loses_nothing(tmp_path):
    _two_workers_one_killed(f"sqlite:///{(tmp_path / 'shared.db').as_posix()}", tmp_path)


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_VARIABLE)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_VARIABLE} to a database URL (.ci/run starts one and sets it)")
    try:
        open_storage(url, 1)
    except Exception as error:
        pytest.skip(f"PostgreSQL at {POSTGRES_VARIABLE} cannot be reached: {error}")
    return url


def test_two_workers_share_a_postgresql_study_and_one_killed_mid_trial_loses_nothing(postgres_url, tmp_path):
    _two_workers_one_killed(postgres_url, tmp_path)


OPEN_AT_ONCE = """
import sys, time
from htr_pipeline.experiments.study import open_storage
start = float(sys.argv[2])
while time.time() < start:  # every process has imported Optuna: all open the new storage at the same moment
    time.sleep(0.005)
open_storage(sys.argv[1], 5)
"""


def test_workers_that_open_a_new_study_file_at_the_same_moment_all_get_it(tmp_path):
    # Optuna creates its tables on first opening; two workers doing so at once collided on alembic_version.
    start = time.time() + 20
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                OPEN_AT_ONCE,
                f"sqlite:///{(tmp_path / f'new{index % 2}.db').as_posix()}",
                str(start),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(8)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    failed = [output[-1500:] for worker, output in zip(workers, outputs, strict=True) if worker.returncode != 0]
    assert failed == []
