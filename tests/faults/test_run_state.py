"""MLflow run states after faults, with real processes: two first-ever runs at once, a run whose process died."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.tracking import MlflowClient

from htr_pipeline.tracking import RUN_HOST_TAG, RUN_PID_TAG

START_A_SESSION = (
    "from pathlib import Path; from kedro.framework.startup import bootstrap_project; "
    "from kedro.framework.session import KedroSession; bootstrap_project(Path.cwd()); "
    "KedroSession.create(project_path=Path.cwd()).load_context()"
)
"""What every ``kedro`` command does first: kedro-mlflow creates the store and the experiment."""


def project_environment() -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}


def store_of(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project.as_posix()}/mlflow.db")


def start_session(project: Path) -> None:
    bootstrap_project(project)
    KedroSession.create(project_path=project).load_context()


@pytest.mark.slow
def test_first_ever_runs_started_together_create_one_store(kedro_project: Path):
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", START_A_SESSION],
            cwd=kedro_project,
            env=project_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [start.communicate(timeout=300)[1] for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], "\n".join(errors)[-3000:]
    names = [experiment.name for experiment in store_of(kedro_project).search_experiments()]
    assert sorted(names) == ["Default", "htr_pipeline"]


def _run_killed_while_running(project: Path, host: str | None = None) -> str:
    """A run started by a process that is then killed with SIGKILL; ``host`` replaces its host tag."""
    script = (
        "import os, signal, mlflow; from htr_pipeline.tracking import tag_run_process, tag_run; "
        f"mlflow.set_tracking_uri('sqlite:///{project.as_posix()}/mlflow.db'); "
        "run = mlflow.start_run(experiment_id=mlflow.get_experiment_by_name('htr_pipeline').experiment_id); "
        "tag_run_process(run.info.run_id); "
        + (f"tag_run(run.info.run_id, {{'{RUN_HOST_TAG}': '{host}'}}); " if host else "")
        + "print(run.info.run_id, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], cwd=project, env=project_environment(), capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    return killed.stdout.split()[0]


@pytest.mark.slow
def test_a_run_whose_process_died_is_marked_killed_at_the_next_start(kedro_project: Path):
    start_session(kedro_project)  # the store and experiment
    dead_here = _run_killed_while_running(kedro_project)
    elsewhere = _run_killed_while_running(kedro_project, host="another-host")
    client = store_of(kedro_project)
    alive = client.create_run(client.get_experiment_by_name("htr_pipeline").experiment_id).info.run_id
    client.set_tag(alive, RUN_HOST_TAG, socket.gethostname())
    client.set_tag(alive, RUN_PID_TAG, str(os.getpid()))
    assert client.get_run(dead_here).info.status == "RUNNING"

    start_session(kedro_project)

    assert client.get_run(dead_here).info.status == "KILLED"
    assert client.get_run(dead_here).info.end_time is not None
    assert client.get_run(elsewhere).info.status == "RUNNING"  # its process may live on its own host
    assert client.get_run(alive).info.status == "RUNNING"
    mlflow.set_tracking_uri(f"sqlite:///{kedro_project.as_posix()}/mlflow.db")
