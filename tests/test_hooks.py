"""The project's hooks: the validated parameters reach nodes, at most four hooks act in an order of their own,
and none of them (nor the datasets and tracking modules) looks for a dataset by name."""

import ast
import dataclasses
import re
from pathlib import Path

import mlflow
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.framework.project import settings as kedro_settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from mlflow.tracking import MlflowClient

from htr_pipeline import settings
from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.hooks import ParameterValidationHook, RunSummaryHook, RunSummaryRole, run_name
from htr_pipeline.run_summary import RunResults
from tests.conftest import PROJECT_ROOT, flatten_as_logged, small_synthetic_parameters


def _catalog_with(parameters: dict) -> DataCatalog:
    """A catalog holding parameters the way Kedro does: ``parameters`` and ``params:<path>`` at every depth."""
    catalog = DataCatalog()
    catalog["parameters"] = parameters

    def add(values: dict, prefix: str) -> None:
        for key, value in values.items():
            catalog[f"params:{prefix}{key}"] = value
            if isinstance(value, dict):
                add(value, f"{prefix}{key}.")

    add(parameters, "")
    return catalog


def test_the_real_base_parameters_with_explicit_nulls_pass_through_the_hook():
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), env="base", **settings.CONFIG_LOADER_ARGS)
    parameters = loader["parameters"]
    assert parameters["training"]["losses"]["ctc_ceiling"] is None  # the case that once broke the hook
    catalog = _catalog_with(parameters)
    ParameterValidationHook().after_catalog_created(catalog)
    config = validate_parameters(parameters)
    effective = effective_parameters(config)
    assert catalog.load("parameters") == effective
    assert catalog.load("params:training") == config.training
    assert catalog.load("params:training").model_dump(mode="json") == effective["training"]
    assert catalog.load("params:training.losses.ctc_ceiling") is None
    assert catalog.load("params:evaluation.beam_search") is None


def test_defaults_missing_from_the_file_are_filled_in():
    catalog = _catalog_with({"data": {"sources": [{"kind": "line_folder", "path": "x"}]}})
    ParameterValidationHook().after_catalog_created(catalog)
    assert catalog.load("params:data").image_height == 64
    assert catalog.load("params:training.epochs") == 2


def test_at_most_four_hooks_are_registered():
    assert len(settings.HOOKS) <= 4


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_hook_dataset_or_tracking_module_names_a_dataset_of_the_catalog():
    catalog = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "catalog.yml").read_text())
    entries = [name for name in catalog if not name.startswith("_")]
    patterns = [
        re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(name)) + "$") for name in entries if "{" in name
    ]
    package = PROJECT_ROOT / "src" / "htr_pipeline"
    modules = [
        package / "hooks.py",
        package / "settings.py",
        *package.glob("tracking/*.py"),
        *package.glob("datasets/*.py"),
    ]
    named = {
        f"{path.relative_to(package)}: {literal!r}"
        for path in modules
        for literal in _string_literals(path)
        if literal in entries or any(pattern.match(literal) for pattern in patterns)
    }
    assert named == set()


def test_a_run_is_named_after_its_pipelines_in_registry_order_whatever_order_kedro_hands_them_in():
    bootstrap_project(PROJECT_ROOT)
    # `kedro run --pipelines=training,evaluation` passes list(set(...)): either order reaches the hook.
    assert run_name(["evaluation", "training"]) == run_name(["training", "evaluation"]) == "training+evaluation"
    assert run_name(["sweep", "data_ingestion"]) == "data_ingestion+sweep"
    assert run_name(["__default__"]) == "data_ingestion+training+evaluation"


def test_every_run_summary_role_in_the_catalog_is_valid_and_its_figures_have_lines_in_the_block():
    catalog = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "catalog.yml").read_text())
    roles = {
        name: RunSummaryRole.model_validate(entry["metadata"]["run_summary"])
        for name, entry in catalog.items()
        if (entry.get("metadata") or {}).get("run_summary")
    }
    figures = {role.figures: name for name, role in roles.items() if role.figures}
    assert set(figures) <= {field.name for field in dataclasses.fields(RunResults)}
    assert figures["sweep"] == "sweep_summary" and figures["comparison"] == "comparison_summary"
    assert {"comparison_report", "comparison_table", "comparison_latex", "sweep_trials"} <= {
        name for name, role in roles.items() if role.listed
    }


@pytest.mark.slow
def test_the_hooks_act_in_their_declared_order_whatever_order_they_are_registered_in(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(settings, "HOOKS", tuple(reversed(settings.HOOKS)))
    bootstrap_project(kedro_project)
    assert isinstance(kedro_settings.HOOKS[0], RunSummaryHook)  # Kedro registers them in the reversed order
    try:
        with KedroSession.create(project_path=kedro_project) as session:
            session.run(pipeline_names=["data_ingestion"])
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()

    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project.as_posix()}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("htr_pipeline").experiment_id])
    assert run.info.run_name == "data_ingestion" and run.info.status == "FINISHED"
    expected = effective_parameters(validate_parameters(small_synthetic_parameters()))
    assert run.data.params == flatten_as_logged({"data": expected["data"]})
    assert {"htr.host", "htr.pid", "kedro.env"} <= set(run.data.tags)
    assert sorted(run.data.metrics) == [
        "ingestion/charset_size",
        "ingestion/rejects",
        "ingestion/samples_test",
        "ingestion/samples_train",
        "ingestion/samples_valid",
        "ingestion/squeezed_lines",
    ]
    assert list((kedro_project / "data" / "03_primary" / "ingestion_record.json").iterdir())
    block = capsys.readouterr().out
    assert "Data: 36 lines (6 test / 24 train / 6 valid), 0 rejected" in block
    assert f"MLflow run {run.info.run_id}: start the UI with" in block


def test_the_kedro_command_tag_is_what_was_typed():
    from htr_pipeline.hooks import kedro_command_as_typed

    typed = ["/p/.venv/bin/kedro", "run", "--pipelines=training", "--params", "training.epochs=3,training.seed=1"]
    assert (
        kedro_command_as_typed(typed, {}) == "kedro run --pipelines=training --params training.epochs=3,training.seed=1"
    )
    from_python = {
        "pipeline_names": ["training"],
        "env": "previous_system",
        "runtime_params": {"training": {"epochs": 3}},
    }
    assert kedro_command_as_typed(["pytest"], from_python) == (
        "kedro run --pipelines=training --env=previous_system --params=training.epochs=3"
    )
