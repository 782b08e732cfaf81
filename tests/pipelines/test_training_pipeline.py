"""The training pipeline in real Kedro sessions with a real MLflow sqlite store: logging, checkpoints, resume."""

from __future__ import annotations

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
    import re

    (report,) = [output["data"]["text/markdown"] for output in outputs if "text/markdown" in output.get("data", {})]
    image_links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(image_links) == 2
    assert all((training_project / "notebooks" / link).resolve().is_file() for link in image_links), image_links
