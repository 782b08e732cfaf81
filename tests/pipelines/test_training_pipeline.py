"""The training pipeline in real Kedro sessions with a real MLflow sqlite store: logging, checkpoints, resume."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.hooks import MissingInputError
from htr_pipeline.trained_run import load_trained_run
from tests.conftest import flatten_as_logged
from tests.pipeline_runs import logged_runs, metric_history, mlflow_client, run_session, tiny_parameters


@pytest.mark.slow
def test_training_before_ingestion_stops_with_one_line_naming_the_command(training_project: Path):
    with pytest.raises(MissingInputError) as error:
        run_session(training_project, "training")
    message = str(error.value)
    assert "charset, line_images, manifest not found" in message
    assert "`kedro run --pipeline=data_ingestion`" in message
    assert "\n" not in message


@pytest.mark.slow
def test_main_job_trains_logs_the_validated_config_and_resumes_exactly(training_project: Path):
    catalog = run_session(training_project)
    summary = catalog.load("training_summary")
    (straight,) = logged_runs(training_project)
    assert straight.info.run_name == "data_ingestion+training+evaluation"

    expected = effective_parameters(validate_parameters(tiny_parameters()))
    logged = straight.data.params
    assert logged == {
        **flatten_as_logged(
            {"data": expected["data"], "training": expected["training"], "evaluation": expected["evaluation"]}
        ),
        "evaluation.confidence_level": "0.95",  # how the intervals were computed: a param, as the bootstrap's
    }
    assert logged["training.early_stopping.patience"] == "5"
    assert logged["training.adaptive_balancing.adaptation_rate"] == "0.15"

    for metric in (
        "val/cer",
        "val/wer",
        "val/psnr",
        "val/ssim",
        "val/combined",
        "train/ctc_loss",
        "train/g_loss",
        "train/d_loss",
        "train/ctc_loss_raw",
        "adaptive/weight_ctc",
        "samples_per_second",
    ):
        assert [step for step, _ in metric_history(training_project, straight.info.run_id, metric)] == [1, 2], metric
    assert metric_history(training_project, straight.info.run_id, "recognizer/val_cer")
    folder = Path(summary["checkpoint_folder"])
    assert sorted(path.name for path in folder.glob("*.pt")) == [
        "best.pt",
        "best_cer.pt",
        "best_combined.pt",
        "best_psnr.pt",
        "best_ssim.pt",
        "last.pt",
    ]
    artifacts = [a.path for a in mlflow_client(training_project).list_artifacts(straight.info.run_id, "gradients")]
    assert artifacts == ["gradients/epoch_001.json", "gradients/epoch_002.json"]

    # The same run interrupted after epoch 1, then resumed to epoch 2, gives the same numbers.
    run_session(training_project, runtime_params={"training": {"epochs": 1}})
    interrupted = logged_runs(training_project)[1]
    last = Path(_run_folder_of(training_project, interrupted.info.run_id)) / "last.pt"
    run_session(training_project, "training", runtime_params={"training": {"resume_from": str(last)}})
    for metric in ("val/cer", "val/psnr", "val/ssim", "train/g_loss", "adaptive/weight_ctc"):
        resumed = metric_history(training_project, interrupted.info.run_id, metric)
        uninterrupted = metric_history(training_project, straight.info.run_id, metric)
        assert [step for step, _ in resumed] == [step for step, _ in uninterrupted] == [1, 2], metric
        assert [value for _, value in resumed] == pytest.approx([value for _, value in uninterrupted], rel=1e-5)


def _run_folder_of(project: Path, run_id: str) -> str:
    """The checkpoint folder a run's training summary names (the newest summary of that run)."""
    import json

    for path in sorted((project / "data" / "08_reporting" / "training_summary.json").glob("*/training_summary.json")):
        summary = json.loads(path.read_text())
        if summary["mlflow_run_id"] == run_id:
            folder = summary["checkpoint_folder"]
    return folder


@pytest.mark.slow
def test_main_job_evaluates_logs_models_and_the_notebook_reads_the_results(training_project: Path):
    import shutil

    import mlflow.pytorch
    import nbformat
    import torch
    from nbclient import NotebookClient

    from htr_pipeline.evaluation.aggregates import summarise
    from tests.conftest import PROJECT_ROOT

    catalog = run_session(training_project)
    samples = catalog.load("evaluation_samples")
    summary = catalog.load("evaluation_summary")
    assert summary["split"] == "test" and summary["recognizers"] == ["in_loop", "judge"]
    assert summary["headline_recognizer"] == "judge"
    assert samples.groupby("recognizer").size().to_dict() == {"in_loop": 6, "judge": 6}
    for recognizer in ("in_loop", "judge"):
        table = samples[samples["recognizer"] == recognizer].drop(columns="recognizer").reset_index(drop=True)
        assert summary[recognizer] == summarise(table, resamples=1000, seed=0)
    # Both recognizers read the same lines, the same degraded and restored images: only the readings differ.
    in_loop, judge = (samples[samples["recognizer"] == name].reset_index(drop=True) for name in ("in_loop", "judge"))
    assert in_loop["psnr_db_restored"].equals(judge["psnr_db_restored"])
    assert catalog.load("evaluation_report").startswith("#")
    assert catalog.load("evaluation_gallery").size[0] > 0

    (run,) = logged_runs(training_project)
    client = mlflow_client(training_project)
    assert run.data.tags["htr.evaluated_run_id"] == run.info.run_id
    assert "htr.checkpoint_folder" in run.data.tags
    assert any(key.startswith("eval/") for key in client.get_run(run.info.run_id).data.metrics)
    logged = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"summary.json", "report.md", "plots.png", "gallery.png"} <= logged

    mlflow.set_tracking_uri(f"sqlite:///{training_project.as_posix()}/mlflow.db")
    generator = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/generator").eval()
    images = torch.rand(1, 1, 32, 72)  # another width than the logged input example
    expected = load_trained_run(Path(run.data.tags["htr.checkpoint_folder"]) / "best.pt", "test").generator
    with torch.no_grad():
        assert torch.allclose(generator(images), expected(images), atol=1e-6)

    (training_project / "notebooks").mkdir()
    shutil.copy(PROJECT_ROOT / "notebooks" / "evaluation.ipynb", training_project / "notebooks")
    notebook = nbformat.read(training_project / "notebooks" / "evaluation.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, resources={"metadata": {"path": str(training_project / "notebooks")}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs)
    assert [str(output)[:300] for output in outputs if "Warning" in str(output) or "IProgress" in str(output)] == []
    shown = " ".join(str(output.get("data", {}).get("text/plain", "")) + output.get("text", "") for output in outputs)
    old_word = "enhanced"  # rename_restored: keep (the word the notebook used before "restored")
    assert "restored" in shown and old_word not in shown  # what every picture and report calls it
    import re

    (report,) = [output["data"]["text/markdown"] for output in outputs if "text/markdown" in output.get("data", {})]
    image_links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(image_links) == 2
    assert all((training_project / "notebooks" / link).resolve().is_file() for link in image_links), image_links


def _readme_command(starting: str) -> str:
    """The README's command line that starts with ``starting`` (its trailing comment dropped)."""
    from tests.conftest import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    return next(line for line in readme.splitlines() if line.startswith(starting)).split("  #")[0]


def _kedro(project: Path, command: str) -> subprocess.CompletedProcess:
    """A README command as a user types it, run by the project's own ``kedro`` in ``project``."""
    kedro = Path(sys.executable).parent / "kedro"
    arguments = shlex.split(command)
    assert arguments[0] == "kedro", command
    return subprocess.run(
        [str(kedro), *arguments[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_the_readme_resume_commands_finish_or_continue_a_run_without_training_any_recognizer_again(
    training_project: Path,
):
    import torch

    run_session(training_project)  # ingestion, 2 epochs (training.epochs), evaluation
    (first,) = logged_runs(training_project)
    run_id = first.info.run_id
    first_folder = Path(_run_folder_of(training_project, run_id))
    resume = _readme_command('kedro run --pipeline=training --params "training.resume_from=<MLflow run id>"')
    further = _readme_command('kedro run --pipeline=training --params "training.resume_from=<MLflow run id>,')

    # Finished: one line saying so and what to pass, exit status 1, before any recognizer trains.
    finished = _kedro(training_project, resume.replace("<MLflow run id>", run_id))
    assert finished.returncode == 1
    (error,) = [line for line in finished.stderr.splitlines() if line.startswith("Error:")]
    assert "has trained 2 epochs, training.epochs is 2: nothing left to resume" in error
    assert f'--params "training.resume_from={first_folder.as_posix()}/last.pt,training.epochs=7"' in error
    refused = logged_runs(training_project)[1].info.run_id
    assert not mlflow_client(training_project).get_run(refused).data.metrics  # nothing was trained

    continued = _kedro(training_project, further.replace("<MLflow run id>", run_id))
    assert continued.returncode == 0, continued.stderr[-3000:]
    resuming = logged_runs(training_project)[2].info.run_id
    summary_path = sorted((training_project / "data" / "08_reporting" / "training_summary.json").glob("*/*.json"))[-1]
    summary = json.loads(summary_path.read_text())
    epochs = int(further.split("training.epochs=")[1].split('"')[0])
    assert (summary["mlflow_run_id"], summary["epochs_run"]) == (run_id, epochs)
    # Neither stage 1 nor the judge trained again: the resuming session's own run holds no recognizer metric.
    assert not [name for name in mlflow_client(training_project).get_run(resuming).data.metrics if "/" in name]
    assert [step for step, _ in metric_history(training_project, run_id, "val/cer")] == list(range(1, epochs + 1))
    judge_then = torch.load(first_folder / "last.pt", weights_only=True)["reference_recognizers"]["judge"]
    judge_now = torch.load(Path(summary["checkpoint_folder"]) / "last.pt", weights_only=True)["reference_recognizers"]
    assert all(
        torch.equal(judge_now["judge"]["recognizer"][key], value) for key, value in judge_then["recognizer"].items()
    )
    # The new folder holds every checkpoint (best ones carried over or improved), and the run names it.
    folder = Path(summary["checkpoint_folder"])
    assert folder != first_folder
    assert {path.name for path in folder.glob("*.pt")} == {path.name for path in first_folder.glob("*.pt")}
    assert (
        mlflow_client(training_project).get_run(run_id).data.tags["htr.checkpoint_folder"]
        == summary["checkpoint_folder"]
    )
    assert torch.load(first_folder / "last.pt", weights_only=True)["epoch"] == 2  # left as it was
    printed = " ".join(continued.stdout.split())
    assert f"MLflow run {run_id} holds the resumed epochs (this session's run {resuming}" in printed
    assert f"/runs/{run_id}?" in printed
    assert f"Training: {epochs} epochs" in printed
    tag = mlflow_client(training_project).get_run(resuming).data.tags["kedro_command"]
    assert shlex.split(tag) == shlex.split(further.replace("<MLflow run id>", run_id))  # what was typed
