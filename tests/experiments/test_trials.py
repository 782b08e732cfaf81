"""A trial's `kedro run`: its run-config file, and what happens when the process fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from htr_pipeline.config import SweepConfig, effective_parameters, validate_parameters
from htr_pipeline.experiments.study import SweepPlan, TrialFailedError
from htr_pipeline.experiments.trials import KedroProject, KedroRun, KedroTrialExecutor
from tests.conftest import small_synthetic_parameters


class Store:
    """The MLflow store as a list of what the executor did to it."""

    def __init__(self):
        self.created: list[tuple[str, str | None]] = []
        self.ended: list[tuple[str, str]] = []

    def create_run(self, name, parent_run_id, tags):
        self.created.append((name, parent_run_id))
        return f"run-{len(self.created)}"

    def metric_history(self, run_id, metric):
        return []

    def tag(self, run_id, name):
        return None

    def set_tags(self, run_id, tags):
        pass

    def end_run(self, run_id, status):
        self.ended.append((run_id, status))

    def evaluation_summary(self, run_id):
        raise AssertionError("no evaluation in these tests")


def test_the_run_config_file_is_what_kedro_run_reads():
    run = KedroRun(
        pipelines=("training", "evaluation"),
        params={"training": {"epochs": 1, "generator": {"channels": [8, 16]}}},
        load_versions={"manifest": "2026-01-01T00.00.00.000Z", "charset": "2026-01-01T00.00.00.000Z"},
        from_nodes="train_gan",
    )
    assert run.config("seed") == {
        "run": {
            "pipelines": "training,evaluation",
            "params": {"training": {"epochs": 1, "generator": {"channels": [8, 16]}}},
            "load_versions": "manifest:2026-01-01T00.00.00.000Z,charset:2026-01-01T00.00.00.000Z",
            "from_nodes": "train_gan",
            "env": "seed",
        }
    }


def test_a_failed_stage_one_fails_its_trial_with_the_log_and_is_not_trained_again(tmp_path: Path):
    not_a_project = tmp_path / "not_a_project"
    not_a_project.mkdir()
    sweep = SweepConfig.model_validate({"space": {"training.losses.weights.ctc": {"choices": [1.0, 3.0]}}})
    base = effective_parameters(validate_parameters(small_synthetic_parameters()))
    plan = SweepPlan(sweep, base, "fingerprint", "sqlite:///unused.db")
    store = Store()
    project = KedroProject(not_a_project, None, tmp_path / "work" / "sweep", {}, "sweep-run", poll_seconds=0.1)
    executor = KedroTrialExecutor(project, store, sweep, "fingerprint")

    with pytest.raises(TrialFailedError) as error:
        executor(plan.request(0, {"training.losses.weights.ctc": 1.0}, 42, "baseline"), progress=None)
    message = str(error.value)
    assert "exited with status" in message and "kedro.log" in message
    (stage_one_folder,) = (tmp_path / "work" / "sweep").glob("stage_one_*")
    assert yaml.safe_load((stage_one_folder / "run.yml").read_text())["run"]["node_names"] == (
        "pretrain_recognizer,train_reference_recognizers"
    )
    assert store.created == [(f"stage 1 {stage_one_folder.name.removeprefix('stage_one_')}", "sweep-run")]
    assert store.ended == [("run-1", "FAILED")]

    # Another trial with the same stage 1 fails at once, naming the first failure, and starts no process.
    with pytest.raises(TrialFailedError, match="failed earlier in this worker"):
        executor(plan.request(1, {"training.losses.weights.ctc": 3.0}, 42, "grid"), progress=None)
    assert len(store.created) == 1
