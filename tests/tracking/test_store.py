"""The project's MLflow store: a copied project's artifact locations moved, the one change made in raw SQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from htr_pipeline.tracking.store import ARTIFACTS_FOLDER, move_artifact_locations


def _store_made_in(project: Path) -> str:
    """A store as a project leaves it: an experiment, a run with an artifact, a logged model, a model version."""
    uri = f"sqlite:///{project.as_posix()}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("htr_pipeline", artifact_location=str(project / ARTIFACTS_FOLDER))
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "# Evaluation report", "evaluation/report.md")
    model = client.create_logged_model(experiment, name="generator", source_run_id=run.info.run_id)
    client.create_registered_model("htr_generator")
    client.create_model_version("htr_generator", f"{model.artifact_location}", run_id=run.info.run_id)
    client.set_terminated(run.info.run_id)
    return uri


def _locations(uri: str) -> list[str]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("htr_pipeline")
    (run,) = client.search_runs([experiment.experiment_id])
    (model,) = client.search_logged_models([experiment.experiment_id])
    (version,) = client.search_model_versions("name = 'htr_generator'")
    return [experiment.artifact_location, run.info.artifact_uri, model.artifact_location, version.source]


@pytest.mark.slow
def test_a_copied_store_points_every_artifact_location_into_the_copy(tmp_path: Path):
    original, copy = tmp_path / "laptop" / "project", tmp_path / "server" / "project"
    original.mkdir(parents=True)
    uri = _store_made_in(original)
    assert all(str(original) in location for location in _locations(uri))
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # the copy must not need the original
    copied_uri = f"sqlite:///{copy.as_posix()}/mlflow.db"

    assert move_artifact_locations(copied_uri, copy, "htr_pipeline") == original
    locations = _locations(copied_uri)
    assert all(str(copy) in location and str(original) not in location for location in locations), locations
    client = MlflowClient(copied_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("htr_pipeline").experiment_id])
    downloaded = client.download_artifacts(run.info.run_id, "evaluation/report.md", str(tmp_path))
    assert Path(downloaded).read_text() == "# Evaluation report"

    assert move_artifact_locations(copied_uri, copy, "htr_pipeline") is None  # already in place
    assert _locations(copied_uri) == locations


@pytest.mark.slow
def test_a_store_in_place_missing_or_not_sqlite_is_left_alone(tmp_path: Path):
    uri = _store_made_in(tmp_path)
    before = _locations(uri)
    assert move_artifact_locations(uri, tmp_path, "htr_pipeline") is None
    assert move_artifact_locations(uri, tmp_path, "another_experiment") is None
    assert _locations(uri) == before
    assert move_artifact_locations(f"sqlite:///{tmp_path.as_posix()}/absent.db", tmp_path, "htr_pipeline") is None
    assert move_artifact_locations("http://127.0.0.1:5000", tmp_path, "htr_pipeline") is None
    assert mlflow.active_run() is None
