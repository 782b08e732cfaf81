"""The diagnostics pipeline in real Kedro sessions, auditing a real training run in a real MLflow sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.entities import Param

from htr_pipeline.pipelines.diagnostics.nodes import AuditedRunNotFoundError, DiagnosticsFailedError
from htr_pipeline.pipelines.diagnostics.pipeline import AUDITS
from tests.pipelines.test_training_pipeline import _client, _run, _runs

REPORTS = Path("data/08_reporting/diagnostics")


def _latest(project: Path, name: str) -> Path:
    (path,) = sorted((project / REPORTS / name).glob(f"*/{name}"))[-1:]
    return path


def test_diagnostics_without_a_training_run_says_what_to_run(training_project: Path):
    _run(training_project, "data_ingestion")
    with pytest.raises(AuditedRunNotFoundError) as error:
        _run(training_project, "diagnostics")
    assert "no training run in the MLflow store" in str(error.value)
    assert "run `kedro run`" in str(error.value)


@pytest.mark.slow
def test_diagnostics_of_the_main_job_write_every_report_and_fail_on_a_tampered_record(training_project: Path):
    _run(training_project)
    _run(training_project, "diagnostics")

    training_run, diagnostics_run = _runs(training_project)
    assert diagnostics_run.info.run_name == "diagnostics"
    summary = json.loads(_latest(training_project, "summary.json").read_text())
    assert summary["run_id"] == training_run.info.run_id
    verdicts = {row["audit"]: row["verdict"] for row in summary["audits"]}
    assert list(verdicts) == list(AUDITS)
    assert "problem" not in verdicts.values(), _latest(training_project, "summary.md").read_text()
    assert verdicts["config_audit"] == "ok"
    for audit in AUDITS:
        report = json.loads(_latest(training_project, f"{audit}.json").read_text())
        assert report["verdict"] == verdicts[audit]
        assert _latest(training_project, f"{audit}.md").read_text().startswith("# ")
    for audit in ("ctc_length_report", "charset_coverage", "gradient_spikes", "best_model", "split_hygiene"):
        assert _latest(training_project, f"{audit}.png").stat().st_size > 1000

    client = _client(training_project)
    logged = {artifact.path for artifact in client.list_artifacts(diagnostics_run.info.run_id, "diagnostics")}
    assert {f"diagnostics/{audit}.json" for audit in AUDITS} <= logged
    assert "diagnostics/summary.md" in logged
    diagnostics_tags = client.get_run(diagnostics_run.info.run_id).data.tags
    assert diagnostics_tags["htr.audited_run_id"] == training_run.info.run_id
    assert diagnostics_tags["htr.diagnostics.config_audit"] == "ok"
    audited_tags = client.get_run(training_run.info.run_id).data.tags
    assert audited_tags["htr.diagnostics_run_id"] == diagnostics_run.info.run_id

    # The seed's launcher: a flat `patience` logged beside the real keys. The record no longer matches the
    # checkpoint, and fail_on: problem stops the run, after the reports are written.
    client.log_batch(training_run.info.run_id, params=[Param("training.patience", "0")])
    with pytest.raises(DiagnosticsFailedError) as error:
        _run(
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
