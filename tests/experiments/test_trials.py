"""A trial's `kedro run`: its run-config file, and what happens when the process fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
import yaml

from htr_pipeline.config import SweepConfig, effective_parameters, validate_parameters
from htr_pipeline.experiments.study import SweepPlan, TrialFailedError
from htr_pipeline.experiments.trials import KedroProject, KedroRun, KedroTrialExecutor
from htr_pipeline.tracking import SweepRunStore
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


def test_the_page_figure_is_the_valid_pages_score_of_the_checkpoint_the_trial_kept(tmp_path: Path):
    """Read back from a real MLflow store: ``val/page_f_measure`` at the epoch the monitor kept (its first best)."""
    store = SweepRunStore(f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}", "0")
    client = mlflow.MlflowClient(store.tracking_uri)
    store.experiment_id = client.create_experiment("sweep", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = store.create_run("trial 0: baseline, seed 42", None, {})
    for epoch, combined, pages in [(1, -15.8, 87.03), (2, -4.6, 86.62), (3, -4.6, 83.73)]:
        client.log_metric(run_id, "val/combined", combined, step=epoch)
        client.log_metric(run_id, "val/page_f_measure", pages, step=epoch)
    base = effective_parameters(validate_parameters(small_synthetic_parameters()))
    sweeps = {
        objective: SweepConfig.model_validate({"space": {}, "seeds": [42, 43], "objective": objective})
        for objective in ("judge_cer", "page_f_measure")
    }
    project = KedroProject(tmp_path, None, tmp_path / "work" / "sweep", {}, None, poll_seconds=0.1)
    executor = KedroTrialExecutor(project, store, sweeps["page_f_measure"], "fingerprint")
    request = SweepPlan(sweeps["page_f_measure"], base, "fingerprint", "sqlite:///unused.db").request(
        0, {}, 42, "baseline"
    )
    assert executor._page_figures(run_id, request) == {"page_f_measure": 86.62}  # epoch 2, not the tie at 3
    by_pages = request.config.model_copy(
        update={"training": request.config.training.model_copy(update={"monitor": "val/page_f_measure"})}
    )
    assert executor._page_figures(run_id, replace(request, config=by_pages)) == {"page_f_measure": 87.03}

    without_pages = store.create_run("trial 1: baseline, seed 43", None, {})
    client.log_metric(without_pages, "val/combined", -4.6, step=1)
    with pytest.raises(TrialFailedError, match="logged no val/page_f_measure at the epoch its val/combined kept"):
        executor._page_figures(without_pages, request)
    lines_only = KedroTrialExecutor(project, store, sweeps["judge_cer"], "fingerprint")
    assert lines_only._page_figures(without_pages, request) == {}
