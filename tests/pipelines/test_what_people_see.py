"""What a person sees of a real run: stored paths that survive a copy, MLflow as a model-training record (the
registry included), and a kedro-viz site whose previews all load."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from htr_pipeline import pipeline_registry
from htr_pipeline.diagnostics.registry import AUDITS
from tests.conftest import PROJECT_ROOT, small_synthetic_parameters, write_line_png
from tests.pipeline_runs import TINY_TRAINING, logged_runs, mlflow_client, run_session

pytestmark = pytest.mark.slow  # one module-wide fixture runs the main job, diagnostics and inference

REGISTERED_NAME = "htr_generator"
MAIN_JOB = "data_ingestion+training+evaluation"
"""The MLflow run name of the main job."""
PROVENANCE_TAGS = {"project_path", "mlflow.source.name"}
"""Written by kedro-mlflow and MLflow, not by the project: where (which copy, which program) a run was made."""


def _new_project(folder: Path) -> Path:
    project = folder / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    for name in ("catalog.yml", "mlflow.yml"):
        shutil.copy(PROJECT_ROOT / "conf" / "base" / name, project / "conf" / "base" / name)
    parameters = small_synthetic_parameters(train=12, valid=4, test=4)
    parameters["training"] = {**TINY_TRAINING, "epochs": 1}
    parameters["evaluation"] = {"bootstrap_resamples": 100, "register_model": REGISTERED_NAME}
    parameters["diagnostics"] = {"fail_on": None}
    parameters["inference"] = {"input_path": "data/01_raw/scans"}
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    for seed in range(2):
        write_line_png(project / "data" / "01_raw" / "scans" / f"line_{seed}.png", width=160, seed=seed)
    return project


@pytest.fixture(scope="module")
def ran_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The main job, diagnostics and inference, run once in a throw-away project."""
    project = _new_project(tmp_path_factory.mktemp("seen"))
    here = Path.cwd()
    os.chdir(project)
    try:
        for pipeline in (None, "diagnostics", "inference"):
            run_session(project, pipeline)
        yield project
    finally:
        os.chdir(here)


def test_no_summary_report_or_tag_of_the_project_holds_an_absolute_path(ran_project: Path):
    stored = [
        path
        for path in (ran_project / "data").rglob("*")
        if path.is_file() and path.suffix in {".json", ".md", ".csv", ".txt"}
    ]
    assert {path.name for path in stored} >= {
        "training_summary.json",
        "evaluation_summary.json",
        "evaluation_report.md",
        "summary.md",
        "inference_summary.json",
        "inference_results.csv",
    }
    holding = [str(path.relative_to(ran_project)) for path in stored if str(ran_project) in path.read_text()]
    assert holding == []
    runs = logged_runs(ran_project)
    assert len(runs) == 3
    for run in runs:
        ours = {key: value for key, value in {**run.data.tags, **run.data.params}.items() if key not in PROVENANCE_TAGS}
        assert {key: value for key, value in ours.items() if str(ran_project) in value} == {}, run.info.run_name
    training = next(run for run in runs if "htr.checkpoint_folder" in run.data.tags)
    folder = training.data.tags["htr.checkpoint_folder"]
    assert folder.startswith("data/06_models/gan_checkpoints/") and (ran_project / folder / "best.pt").is_file()


def test_report_links_and_inference_folders_are_where_they_say(ran_project: Path):
    (report,) = (ran_project / "data" / "08_reporting" / "evaluation_report.md").glob("*/evaluation_report.md")
    links = [line.split("](", 1)[1].rstrip(")") for line in report.read_text().splitlines() if line.startswith("![")]
    assert len(links) == 2
    assert all((report.parent / link).resolve().is_file() for link in links), links
    (summary,) = (ran_project / "data" / "08_reporting" / "diagnostics" / "summary.md").glob("*/summary.md")
    audit_links = [part.split(")", 1)[0] for part in summary.read_text().split("](")[1:]]
    assert audit_links and all((summary.parent / link).resolve().is_file() for link in audit_links), audit_links
    (version,) = (ran_project / "data" / "07_model_output" / "inference").iterdir()
    assert sorted(path.name for path in version.iterdir()) == ["comparison", "restored", "results", "transcriptions"]


def _artifacts(client: MlflowClient, run_id: str, folder: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, folder):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_each_run_holds_the_artifacts_the_catalog_declares_and_the_reports_links_resolve_there(
    ran_project: Path, tmp_path: Path
):
    client = mlflow_client(ran_project)
    runs = {run.info.run_name: run.info.run_id for run in logged_runs(ran_project)}
    audits = ["best_model", "charset_coverage", "config_audit", "ctc_length_report", "gradient_spikes"]
    audits += ["label_convention", "recognizer_readability", "split_hygiene", "summary"]
    plotted = ["best_model", "charset_coverage", "ctc_length_report", "gradient_spikes", "split_hygiene"]
    assert _artifacts(client, runs["diagnostics"]) == {
        *(f"diagnostics/{audit}.{suffix}" for audit in audits for suffix in ("json", "md")),
        *(f"diagnostics/{audit}.png" for audit in plotted),
    }
    assert _artifacts(client, runs["inference"]) == {"inference/summary.json"}
    main_job = _artifacts(client, runs[MAIN_JOB])
    assert {path for path in main_job if path.startswith("evaluation/")} == {
        "evaluation/summary.json",
        "evaluation/samples.parquet",
        "evaluation/report.md",
        "evaluation/report.html",
        "evaluation/plots.png",
        "evaluation/gallery.png",
        "evaluation/evaluation_plots.png",
        "evaluation/evaluation_gallery.png",
    }
    assert {
        "weights/generator.pt",
        "weights/generator.json",
        "weights/recognizer.pt",
        "weights/recognizer.json",
    } <= main_job
    for run_id, report in ((runs[MAIN_JOB], "evaluation/report.md"),
                           (runs["diagnostics"], "diagnostics/summary.md")):  # fmt: skip
        text = Path(client.download_artifacts(run_id, report, str(tmp_path))).read_text()
        links = [part.split(")", 1)[0] for part in text.split("](")[1:]]
        assert links and {f"{Path(report).parent}/{link}" for link in links} <= _artifacts(client, run_id), links
    # MLflow's markdown view shows no image: the HTML copy of the report carries both, inlined.
    html = Path(
        client.download_artifacts(runs["data_ingestion+training+evaluation"], "evaluation/report.html", str(tmp_path))
    )
    assert html.read_text().count('<img src="data:image/png;base64,') == 2


def test_mlflow_shows_a_model_training_experiment_with_settings_as_params(ran_project: Path):
    client = mlflow_client(ran_project)
    experiment = client.get_experiment_by_name("htr_pipeline")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    main_job = next(run for run in logged_runs(ran_project) if run.info.run_name == MAIN_JOB)
    metrics, params = main_job.data.metrics, main_job.data.params
    assert not [key for key in metrics if key.rsplit("/", 1)[-1].startswith(("bootstrap", "confidence"))]
    assert params["evaluation.confidence_level"] == "0.95" and params["evaluation.bootstrap_resamples"] == "100"
    old_word = "enhanced"  # rename_restored: keep (the word every metric name used before "restored")
    assert "eval/judge/cer_corpus_restored" in metrics and not [key for key in metrics if old_word in key]
    ingestion = [key for key in metrics if key.startswith("ingestion")]
    assert ingestion and all(key.startswith("ingestion/") for key in ingestion)


def test_evaluation_registers_the_generator_when_asked(ran_project: Path):
    mlflow.set_tracking_uri(f"sqlite:///{ran_project.as_posix()}/mlflow.db")
    (version,) = mlflow_client(ran_project).search_model_versions(f"name = '{REGISTERED_NAME}'")
    main_job = next(run for run in logged_runs(ran_project) if run.info.run_name == MAIN_JOB)
    assert int(version.version) == 1 and version.run_id == main_job.info.run_id
    generator = mlflow.pytorch.load_model(f"models:/{REGISTERED_NAME}/1")
    assert sum(parameter.numel() for parameter in generator.parameters()) > 0


def test_a_copied_project_reads_its_own_artifacts_and_never_writes_into_the_original(
    ran_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    copy = tmp_path / "copy"
    shutil.copytree(ran_project, copy)
    original_artifacts = sorted(path.name for path in (ran_project / "mlartifacts").iterdir())
    monkeypatch.chdir(copy)
    run_session(copy, "data_ingestion")
    client = mlflow_client(copy)
    locations = [client.get_experiment_by_name("htr_pipeline").artifact_location] + [
        run.info.artifact_uri
        for run in client.search_runs([client.get_experiment_by_name("htr_pipeline").experiment_id])
    ]
    assert all(location.startswith(f"file://{copy.as_posix()}/mlartifacts") for location in locations), locations
    assert sorted(path.name for path in (ran_project / "mlartifacts").iterdir()) == original_artifacts
    main_job = next(
        run
        for run in client.search_runs([client.get_experiment_by_name("htr_pipeline").experiment_id])
        if run.info.run_name == MAIN_JOB
    )
    report = client.download_artifacts(main_job.info.run_id, "evaluation/report.md", str(tmp_path))
    assert Path(report).read_text().startswith("# Evaluation report")


def test_kedro_viz_builds_every_preview(ran_project: Path):
    kedro = Path(sys.executable).parent / "kedro"
    result = subprocess.run(
        [str(kedro), "viz", "build", "--include-previews"],
        cwd=ran_project,
        capture_output=True,
        text=True,
        timeout=600,
        env={"KEDRO_DISABLE_TELEMETRY": "true", "PATH": str(kedro.parent) + ":/usr/bin:/bin", "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps its log lines
    # Only the outputs of pipelines this project never ran (a comparison, a sweep) have no version to preview.
    never_ran = pipeline_registry.register_pipelines()
    never_ran = never_ran["comparison"].all_outputs() | never_ran["sweep"].all_outputs()
    without_locations = re.sub(r" \w+\.py:\d+", "", output)  # rich puts the logging call's place mid-sentence
    unpreviewed = set(re.findall(r"'([\w.]+)' could not be previewed", without_locations))  # diagnostics.<audit>.plot
    assert unpreviewed <= never_ran, output[-3000:]
    details = [json.loads(path.read_text()) for path in (ran_project / "build" / "api" / "nodes").iterdir()]
    preview_of = {Path(str(node.get("filepath"))).name: node.get("preview_type") for node in details}
    assert preview_of["charset.json"] == "JSONPreview"
    assert preview_of["summary.json"] == "JSONPreview"  # the diagnostics summary
    assert preview_of["evaluation_plots.png"] == preview_of["evaluation_gallery.png"] == "ImagePreview"
    assert preview_of["dataset_report.png"] == preview_of["dataset_gallery.png"] == "ImagePreview"
    assert preview_of["evaluation_report.md"] == "HTMLPreview"  # markdown reports render, images inlined
    report = next(node for node in details if Path(str(node.get("filepath"))).name == "evaluation_report.md")
    assert report["preview"].count('src="data:image/png;base64,') == 2 and "<table>" in report["preview"]
    assert preview_of["gradient_spikes.png"] == "ImagePreview"
    # The diagnostics summary: the verdict table above every audit's report, the figures inlined.
    summary = next(node for node in details if Path(str(node.get("filepath"))).name == "summary.md")
    plotted = sum(audit.plot for audit in AUDITS)
    assert summary["preview"].count('src="data:image/png;base64,') == plotted and "<table>" in summary["preview"]
