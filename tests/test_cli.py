"""``kedro run`` tells the project's known errors in one line, with the trace on request."""

import ast
import warnings
from pathlib import Path

import click
import mlflow
import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from htr_pipeline.cli import KNOWN_ERRORS, as_current_options
from tests.conftest import small_synthetic_parameters
from tests.pipeline_runs import TINY_TRAINING


def _run(project: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(KedroCLI(project_path=project), ["run", *args], env=env)


@pytest.fixture
def infinite_lr_project(kedro_project: Path) -> Path:
    parameters = small_synthetic_parameters()
    parameters["training"] = {"optimizer": {"lr_generator": float("inf")}}
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    return kedro_project


EXPECTED = (
    "Error: Invalid parameters (1 problem):\n"
    "  - training.optimizer.lr_generator: Input should be a finite number (got inf).\n"
)


@pytest.mark.parametrize("selection", ["--pipelines=data_ingestion", "--pipeline=data_ingestion"])
def test_a_config_error_is_one_message_and_exit_status_1(infinite_lr_project: Path, selection: str):
    result = _run(infinite_lr_project, selection)
    assert result.exit_code == 1
    assert result.output.endswith(EXPECTED)
    assert "Traceback" not in result.output


def test_the_old_pipeline_flag_runs_as_pipelines_without_a_deprecation_warning(infinite_lr_project: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(infinite_lr_project, "--pipeline=data_ingestion")
    assert result.output.endswith(EXPECTED)
    assert [str(warning.message) for warning in caught if "--pipeline" in str(warning.message)] == []
    assert as_current_options({"pipeline": "training", "pipelines": []}) == {
        "pipeline": None,
        "pipelines": ["training"],
    }


def test_the_trace_is_there_on_request(infinite_lr_project: Path):
    for args, env in [
        (("--pipelines=data_ingestion", "--verbose"), None),
        (("--pipelines=data_ingestion",), {"HTR_TRACEBACK": "1"}),
    ]:
        result = _run(infinite_lr_project, *args, env=env)
        assert result.exit_code == 1
        assert type(result.exception).__name__ == "ConfigError"


@pytest.mark.slow
def test_an_error_raised_in_a_node_is_one_message_too(kedro_project: Path):
    parameters = small_synthetic_parameters()
    parameters["data"]["sources"] = [{"kind": "line_folder", "path": "data/01_raw/nowhere"}]
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    result = _run(kedro_project, "--pipelines=data_ingestion")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith("Error: data.sources[0].path: folder 'data/01_raw/nowhere'")


@pytest.mark.slow
def test_diagnostics_of_a_run_whose_recognizer_reads_nothing_exit_non_zero_and_say_why(kedro_project: Path):
    # A run made with the gate opened, as runs were before the gate existed: one epoch, the recognizer reads nothing.
    parameters = small_synthetic_parameters(train=8, valid=4, test=2)
    parameters["training"] = {
        **TINY_TRAINING,
        "epochs": 1,
        "recognizer_pretraining": {"epochs": 1, "batch_size": 4},
    }
    parameters["evaluation"] = {"bootstrap_resamples": 100, "log_models": False}
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    # evaluation.expect_gain is left at its default (true): a run without gain fails after its summary block.
    trained = _run(kedro_project, "--params=training.recognizer_pretraining.max_val_cer=10.0")
    assert trained.exit_code == 1, trained.output
    assert (
        trained.output.strip()
        .splitlines()[-1]
        .startswith(
            "Error: the run ended without a gain over its input: the judge recognizer reads (almost) nothing even on "
            "clean lines"
        )
    )
    assert (
        trained.output.strip()
        .splitlines()[-1]
        .endswith(
            "(see the WARNING lines above; set evaluation.expect_gain: false for a smoke test or ablation that expects "
            "none)"
        )
    )
    assert "Traceback" not in trained.output
    block = trained.output[trained.output.index("Run summary") :]
    assert "Training: 1 epoch; best val CER " in block
    assert "Evaluation on test (2 lines), read by judge, 95% intervals:" in block
    assert "WARNING: the judge recognizer reads (almost) nothing even on clean lines" in block
    assert "evaluation_report            data/08_reporting/evaluation_report.md/" in block
    assert "--backend-store-uri sqlite:///mlflow.db --port 5000`" in block
    assert "?workflowType=machine_learning" in block
    while mlflow.active_run() is not None:  # one process runs both commands here; `kedro run` runs one each
        mlflow.end_run()

    smoke = _run(kedro_project, "--pipeline=evaluation", "--params=evaluation.expect_gain=false")
    assert smoke.exit_code == 0, smoke.output
    assert "WARNING: the judge recognizer reads (almost) nothing even on clean lines" in smoke.output
    while mlflow.active_run() is not None:
        mlflow.end_run()

    result = _run(kedro_project, "--pipeline=diagnostics")
    assert result.exit_code == 1
    last_line = result.output.strip().splitlines()[-1]
    assert last_line.startswith("Error: diagnostics.fail_on is 'problem' and these audits reached it: ")
    assert last_line.startswith(
        "Error: diagnostics.fail_on is 'problem' and these audits reached it: recognizer_readability. "
        "[recognizer_readability] the in-loop recognizer (stage 1) does not read: its best val CER is "
    )
    assert "above max_val_cer 0.5. Every CER of this run" in last_line
    assert "completed successfully" not in result.output
    assert "WARNING: diagnostics: recognizer_readability is a problem: the in-loop recognizer" in result.output
    assert "  recognizer_readability  problem" in result.output
    assert "KedroDeprecationWarning" not in result.output and "deprecated" not in result.output
    assert sorted(p.name for p in (kedro_project / "data/08_reporting/diagnostics").iterdir())[-1] == "summary.md"


@pytest.mark.slow
def test_a_pipeline_whose_inputs_were_never_made_is_one_line_from_a_hook_and_a_trace_on_request(kedro_project: Path):
    result = _run(kedro_project, "--pipelines=training")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (
        "Error: charset, line_images, manifest not found: no run has produced them yet. Run `kedro run "
        "--pipeline=data_ingestion` first, or `kedro run` for the whole main job."
    )
    verbose = _run(kedro_project, "--pipelines=training", "-v")
    assert type(verbose.exception).__name__ == "MissingInputError"


def test_known_errors_are_one_list_no_project_error_is_a_click_exception():
    sources = Path(__file__).resolve().parents[1] / "src" / "htr_pipeline"
    click_errors = [
        f"{path.relative_to(sources)}: {node.name}"
        for path in sources.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and any("ClickException" in ast.unparse(base) for base in node.bases)
    ]
    assert click_errors == []
    assert all(issubclass(error, Exception) and not issubclass(error, click.ClickException) for error in KNOWN_ERRORS)


def test_a_missing_paper_folder_is_one_line_naming_the_key(kedro_project: Path):
    parameters = small_synthetic_parameters()
    parameters["data"]["real_paper"] = {"folders": [{"kind": "page_scans", "name": "archive", "path": "no/such"}]}
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    result = _run(kedro_project, "--pipelines=data_ingestion")
    assert result.exit_code == 1
    assert "Error: data.real_paper.folders[0].path: folder 'no/such'" in result.output
    assert "does not exist. Fix the path, or remove the 'archive' folder." in result.output
    assert "Traceback" not in result.output
