"""The diagnostics pipeline in real Kedro sessions, auditing a real training run in a real MLflow sqlite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param

from htr_pipeline.config import effective_parameters, flatten_as_logged, validate_parameters
from htr_pipeline.diagnostics.registry import AUDITS, Audit, register_audit
from htr_pipeline.diagnostics.run_inputs import AuditedRun
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding
from htr_pipeline.pipelines.diagnostics.nodes import AuditedRunNotFoundError, DiagnosticsFailedError
from tests.pipeline_runs import logged_runs, mlflow_client, run_session, tiny_parameters

REPORTS = Path("data/08_reporting/diagnostics")
AUDIT_NAMES = [audit.name for audit in AUDITS]


def _latest(project: Path, name: str) -> Path:
    (path,) = sorted((project / REPORTS / name).glob(f"*/{name}"))[-1:]
    return path


@pytest.mark.slow
def test_diagnostics_without_a_training_run_says_what_to_run(training_project: Path):
    run_session(training_project, "data_ingestion")
    with pytest.raises(AuditedRunNotFoundError) as error:
        run_session(training_project, "diagnostics")
    assert "no training run in the MLflow store" in str(error.value)
    assert "run `kedro run`" in str(error.value)


@pytest.mark.slow
def test_diagnostics_of_the_main_job_write_every_report_and_fail_on_a_tampered_record(training_project: Path):
    run_session(training_project)
    run_session(training_project, "diagnostics")

    training_run, diagnostics_run = logged_runs(training_project)
    assert diagnostics_run.info.run_name == "diagnostics"
    summary = json.loads(_latest(training_project, "summary.json").read_text())
    assert summary["run_id"] == training_run.info.run_id
    verdicts = {row["audit"]: row["verdict"] for row in summary["audits"]}
    assert list(verdicts) == AUDIT_NAMES
    assert "problem" not in verdicts.values(), _latest(training_project, "summary.md").read_text()
    assert verdicts["config_audit"] == "ok"
    for audit in AUDIT_NAMES:
        report = json.loads(_latest(training_project, f"{audit}.json").read_text())
        assert report["verdict"] == verdicts[audit]
        assert _latest(training_project, f"{audit}.md").read_text().startswith("# ")
    for audit in ("ctc_length_report", "charset_coverage", "gradient_spikes", "best_model", "split_hygiene"):
        assert _latest(training_project, f"{audit}.png").stat().st_size > 1000

    client = mlflow_client(training_project)
    logged = {artifact.path for artifact in client.list_artifacts(diagnostics_run.info.run_id, "diagnostics")}
    assert {f"diagnostics/{audit}.json" for audit in AUDIT_NAMES} <= logged
    assert "diagnostics/summary.md" in logged
    diagnostics_tags = client.get_run(diagnostics_run.info.run_id).data.tags
    assert diagnostics_tags["htr.audited_run_id"] == training_run.info.run_id
    assert diagnostics_tags["htr.diagnostics.config_audit"] == "ok"
    audited_tags = client.get_run(training_run.info.run_id).data.tags
    assert audited_tags["htr.diagnostics_run_id"] == diagnostics_run.info.run_id

    # The previous system's launcher: a flat `patience` logged beside the real keys. The record no longer matches the
    # checkpoint, and fail_on: problem stops the run, after the reports are written.
    client.log_batch(training_run.info.run_id, params=[Param("training.patience", "0")])
    with pytest.raises(DiagnosticsFailedError) as error:
        run_session(
            training_project,
            "diagnostics",
            runtime_params={"diagnostics": {"fail_on": "problem", "run_id": training_run.info.run_id}},
        )
    assert "config_audit" in str(error.value)
    config_report = json.loads(_latest(training_project, "config_audit.json").read_text())
    assert config_report["verdict"] == "problem"
    assert config_report["against_checkpoint"] == [
        {"key": "training.patience", "expected": None, "logged": "0", "kind": "unexpected"}
    ]
    assert json.loads(_latest(training_project, "summary.json").read_text())["verdict"] == "problem"


TOY_AUDIT = "lines_per_split"


def lines_per_split(run: AuditedRun, manifest: pd.DataFrame) -> AuditReport:
    """A toy audit, defined here and added through the registry alone: lines per split, as a table and a bar chart."""
    counts = {str(split): int(count) for split, count in manifest["split"].value_counts().sort_index().items()}
    figure = Figure(figsize=(4, 3))
    figure.subplots().bar(list(counts), list(counts.values()))
    finding = Finding("ok", f"{sum(counts.values())} lines audited for run {run.run_id}")
    return AuditReport(TOY_AUDIT, "Lines per split", [finding], {"lines_per_split": counts}).with_figure(figure)


@pytest.fixture
def toy_audit() -> Iterator[Audit]:
    registered = list(AUDITS)
    audit = Audit(TOY_AUDIT, "Lines per split", lines_per_split, ("run", "manifest"), plot=True)
    register_audit(audit)
    yield audit
    AUDITS[:] = registered


def _stage_one_only_run(project: Path) -> str:
    """A training run killed in stage 1, as the store holds it: its validated config logged as params and a
    recognizer metric, but no GAN epoch, hence no checkpoint folder tag."""
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("htr_pipeline")
    run = client.create_run(experiment.experiment_id, run_name="training")
    effective = effective_parameters(validate_parameters(tiny_parameters()))
    logged = flatten_as_logged({"data": effective["data"], "training": effective["training"]})
    params = [Param(key, value) for key, value in logged.items()]
    client.log_batch(run.info.run_id, params=params, metrics=[Metric("recognizer/val_cer", 0.4, 0, 1)])
    client.set_terminated(run.info.run_id, "KILLED")
    return run.info.run_id


@pytest.mark.slow
def test_an_audit_added_through_the_registry_alone_runs_end_to_end(training_project: Path, toy_audit: Audit):
    run_session(training_project, "data_ingestion")
    run_id = _stage_one_only_run(training_project)
    run_session(training_project, "diagnostics", runtime_params={"diagnostics": {"run_id": run_id, "fail_on": None}})

    summary = json.loads(_latest(training_project, "summary.json").read_text())
    assert [row["audit"] for row in summary["audits"]] == [*AUDIT_NAMES, TOY_AUDIT]
    report = json.loads(_latest(training_project, f"{TOY_AUDIT}.json").read_text())
    assert (report["verdict"], report["audited_run_id"]) == ("ok", run_id)
    assert report["lines_per_split"] == {"test": 6, "train": 24, "valid": 6}
    assert _latest(training_project, f"{TOY_AUDIT}.md").read_text().startswith("# Lines per split")
    assert _latest(training_project, f"{TOY_AUDIT}.png").stat().st_size > 1000
    diagnostics_run = next(run for run in logged_runs(training_project) if run.info.run_name == "diagnostics")
    client = mlflow_client(training_project)
    logged = {artifact.path for artifact in client.list_artifacts(diagnostics_run.info.run_id, "diagnostics")}
    assert {f"diagnostics/{TOY_AUDIT}.json", f"diagnostics/{TOY_AUDIT}.md", f"diagnostics/{TOY_AUDIT}.png"} <= logged
    assert client.get_run(diagnostics_run.info.run_id).data.tags[f"htr.diagnostics.{TOY_AUDIT}"] == "ok"

    # Without a checkpoint, the settings the run ran with come from its logged params, read back through the
    # schema; what needs the checkpoint says so.
    lengths = json.loads(_latest(training_project, "ctc_length_report.json").read_text())
    assert lengths["lengths"]["width_downsampling"] == tiny_parameters()["training"]["recognizer"]["width_downsampling"]
    convention = json.loads(_latest(training_project, "label_convention.json").read_text())
    assert convention["findings"] == [
        {
            "verdict": "warning",
            "message": "not checked: the run has no checkpoint folder tag (it never finished a GAN epoch)",
        }
    ]
    assert json.loads(_latest(training_project, "config_audit.json").read_text())["against_checkpoint"] is None
