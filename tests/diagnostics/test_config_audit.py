"""The config audit against params read back from a real MLflow sqlite store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import Param

from htr_pipeline.config import effective_parameters, flatten_as_logged, validate_parameters
from htr_pipeline.diagnostics.config_audit import (
    ParameterMismatch,
    audit_run_config,
    compare_with_logged,
)

SECTIONS = ("data", "training")
MLFLOW_MAX_PARAMS_PER_BATCH = 100


def _project_config(**training: Any) -> dict[str, Any]:
    parameters = {"data": {"sources": [{"kind": "line_folder", "path": "x"}]}, "training": training}
    return effective_parameters(validate_parameters(parameters))


def _checkpoint_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a training checkpoint stores under ``config``."""
    return {"data": config["data"], "training": config["training"]}


@pytest.fixture(scope="module")
def mlflow_client(tmp_path_factory: pytest.TempPathFactory) -> mlflow.MlflowClient:
    store_folder: Path = tmp_path_factory.mktemp("mlruns")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{store_folder}/mlflow.db")


@pytest.fixture(scope="module")
def experiment_id(mlflow_client: mlflow.MlflowClient) -> str:
    return mlflow_client.create_experiment("config_audit")


@pytest.fixture
def log_run(mlflow_client: mlflow.MlflowClient, experiment_id: str) -> Iterator[Any]:
    """Log params in a finished run and return (run_id, params as MLflow gives them back)."""
    open_run_ids: list[str] = []

    def log(params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        run_id = mlflow_client.create_run(experiment_id).info.run_id
        open_run_ids.append(run_id)
        items = list(params.items())
        for start in range(0, len(items), MLFLOW_MAX_PARAMS_PER_BATCH):
            batch = [Param(key, value) for key, value in items[start : start + MLFLOW_MAX_PARAMS_PER_BATCH]]
            mlflow_client.log_batch(run_id, params=batch)
        mlflow_client.set_terminated(run_id)
        open_run_ids.remove(run_id)
        return run_id, dict(mlflow_client.get_run(run_id).data.params)

    yield log
    for run_id in open_run_ids:
        mlflow_client.set_terminated(run_id, status="FAILED")


def test_previous_system_launcher_flat_early_stopping_keys_are_a_problem(log_run):
    config = _project_config(early_stopping={"patience": 15, "min_delta": 0.01, "restore_best_weights": True})
    previous_system_logged = {
        key: value for key, value in flatten_as_logged(config).items() if not key.startswith("training.early_stopping.")
    }
    previous_system_logged |= {"training.early_stopping": "False", "training.patience": "0"}
    run_id, logged = log_run(previous_system_logged)

    report = audit_run_config(logged, run_id, config, _checkpoint_config(config), SECTIONS)

    expected = [
        ParameterMismatch("training.early_stopping", None, "False", "unexpected"),
        ParameterMismatch("training.early_stopping.min_delta", "0.01", None, "missing"),
        ParameterMismatch("training.early_stopping.patience", "15", None, "missing"),
        ParameterMismatch("training.early_stopping.restore_best_weights", "True", None, "missing"),
        ParameterMismatch("training.patience", None, "0", "unexpected"),
    ]
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["against_checkpoint"] == [asdict(mismatch) for mismatch in expected]
    assert as_json["against_current"] == [asdict(mismatch) for mismatch in expected]
    assert report.verdict == "problem"
    assert as_json["against_checkpoint"][1] == {
        "key": "training.early_stopping.min_delta",
        "expected": "0.01",
        "logged": None,
        "kind": "missing",
    }
    markdown = report.to_markdown()
    assert markdown.splitlines()[2] == "**Verdict: problem**"
    assert "differ from the config the run's checkpoint says really ran, in 5 keys" in markdown
    assert "| training.patience | (absent) | `0` | unexpected |" in markdown


def test_params_logged_from_the_same_config_are_ok(log_run):
    config = _project_config(early_stopping={"patience": 15, "min_delta": 0.01})
    run_id, logged = log_run(flatten_as_logged(config))

    report = audit_run_config(logged, run_id, config, _checkpoint_config(config), SECTIONS)

    assert report.details["against_current"] == []
    assert report.details["against_checkpoint"] == []
    assert report.verdict == "ok"
    assert report.to_markdown().count("No differences.") == 2


def test_a_changed_current_config_is_only_a_warning(log_run):
    config_that_ran = _project_config(epochs=5)
    run_id, logged = log_run(flatten_as_logged(config_that_ran))

    report = audit_run_config(logged, run_id, _project_config(epochs=10), _checkpoint_config(config_that_ran), SECTIONS)

    assert report.details["against_checkpoint"] == []
    assert report.details["against_current"] == [asdict(ParameterMismatch("training.epochs", "10", "5", "mismatch"))]
    assert report.verdict == "warning"


def test_without_a_checkpoint_config_the_audit_is_incomplete(log_run):
    config = _project_config()
    run_id, logged = log_run(flatten_as_logged(config))

    report = audit_run_config(logged, run_id, config, None, SECTIONS)

    assert report.details["against_current"] == []
    assert report.verdict == "warning"
    assert report.to_dict()["against_checkpoint"] is None
    assert "not compared" in report.to_markdown()


def test_flatten_as_logged_follows_kedro_mlflow():
    values = {
        "training": {"conv_channels": [16, 32], "resume_from": None, "cosine": False, "nested": {"depth": 2}},
        "diagnostics": {},
        "seed": 42,
    }

    assert flatten_as_logged(values) == {
        "training.conv_channels": "[16, 32]",
        "training.resume_from": "None",
        "training.cosine": "False",
        "training.nested.depth": "2",
        "seed": "42",
    }
    assert flatten_as_logged({"a": 1}, prefix="top") == {"top.a": "1"}


@pytest.mark.parametrize(
    ("config_value", "logged_value"),
    [(15, "15.0"), (15.0, "15"), (True, "true"), (False, "FALSE"), (0.0002, "2e-4")],
)
def test_numerically_or_case_insensitively_equal_values_match(config_value, logged_value):
    assert compare_with_logged({"training": {"value": config_value}}, {"training.value": logged_value}) == []


@pytest.mark.parametrize(("config_value", "logged_value"), [(True, "1"), (15, "150"), ("unet", "Unet")])
def test_different_values_mismatch(config_value, logged_value):
    assert compare_with_logged({"training": {"value": config_value}}, {"training.value": logged_value}) == [
        ParameterMismatch("training.value", str(config_value), logged_value, "mismatch")
    ]


def test_sections_restrict_both_sides():
    config = {"training": {"epochs": 5}, "evaluation": {"split": "test"}}
    logged = {"training.epochs": "5", "evaluation.split": "valid", "kedro.env": "local"}

    assert compare_with_logged(config, logged, sections=["training"]) == []
    assert [mismatch.key for mismatch in compare_with_logged(config, logged)] == ["evaluation.split", "kedro.env"]
