"""kill -9 in the middle of real ``kedro run`` processes: what the next run reads, and how a resume ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from tests.faults.test_run_state import project_environment, start_session, store_of
from tests.faults.test_versions import _versions
from tests.pipeline_runs import metric_history, run_session

KILL_WAIT_SECONDS = 600


def _kill_when(project: Path, pipeline: str, ready: Callable[[], bool]) -> None:
    """Start ``kedro run --pipeline=<pipeline>`` in ``project`` and SIGKILL it as soon as ``ready()``."""
    run = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", f"--pipeline={pipeline}"],
        cwd=project,
        env=project_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while not ready():
        if run.poll() is not None or time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"`kedro run --pipeline={pipeline}` ended before the moment to kill it: {run.stderr.read()}")
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait()
    run.stderr.close()


def _partial_line_images(project: Path) -> list[Path]:
    return list((project / "data" / "03_primary" / "line_images").glob("*/.line_images.partial/*/*/*.png"))


@pytest.mark.slow
def test_training_after_an_ingestion_killed_mid_save_reads_the_previous_complete_one(
    training_project: Path, one_torch_thread
):
    run_session(training_project, "data_ingestion")
    (complete,) = _versions(training_project, "manifest.parquet")
    bigger = yaml.safe_load((training_project / "conf" / "base" / "parameters.yml").read_text())
    bigger["data"]["sources"][0]["lines_per_split"] = {"train": 600, "valid": 6, "test": 6}
    local = training_project / "conf" / "local" / "parameters.yml"
    local.write_text(yaml.safe_dump({"data": bigger["data"]}))
    _kill_when(training_project, "data_ingestion", lambda: len(_partial_line_images(training_project)) >= 20)
    local.unlink()
    (killed,) = [v for v in _versions(training_project, "line_images") if v != complete]
    assert not (training_project / "data" / "03_primary" / "line_images" / killed / "line_images").exists()

    catalog = run_session(training_project, "training")

    summary = catalog.load("training_summary")
    assert summary["train_lines"] == 24  # the complete ingestion's, not the 600 of the killed one
    (record,) = (training_project / "data" / "06_models" / "training_record.json").glob("*/training_record.json")
    read = json.loads(record.read_text())["versions"]
    assert {read[name] for name in ("manifest", "line_images", "charset")} == {complete}


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_uninterrupted_metrics_and_its_run_ends_finished(
    training_project: Path, one_torch_thread
):
    run_session(training_project, "data_ingestion")
    uninterrupted = run_session(training_project, "training").load("training_summary")["mlflow_run_id"]
    before = set((training_project / "data" / "06_models" / "gan_checkpoints").iterdir())

    def first_epoch_saved() -> bool:
        folders = set((training_project / "data" / "06_models" / "gan_checkpoints").iterdir()) - before
        return any((folder / "gan_checkpoints" / "last.pt").is_file() for folder in folders)

    _kill_when(training_project, "training", first_epoch_saved)
    (folder,) = set((training_project / "data" / "06_models" / "gan_checkpoints").iterdir()) - before
    last = folder / "gan_checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["epoch"] == 1  # killed during epoch 2 of 2
    killed = checkpoint["mlflow_run_id"]
    client = store_of(training_project)
    assert client.get_run(killed).info.status == "RUNNING"
    start_session(training_project)
    assert client.get_run(killed).info.status == "KILLED"

    run_session(training_project, "training", runtime_params={"training": {"resume_from": killed}})  # by its run id

    assert client.get_run(killed).info.status == "FINISHED"
    for metric in ("val/cer", "val/psnr", "val/ssim", "train/g_loss", "adaptive/weight_ctc"):
        resumed = metric_history(training_project, killed, metric)
        straight = metric_history(training_project, uninterrupted, metric)
        assert [step for step, _ in resumed] == [step for step, _ in straight] == [1, 2], metric
        assert [value for _, value in resumed] == pytest.approx([value for _, value in straight], rel=1e-5)
