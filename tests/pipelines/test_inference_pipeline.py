"""The inference pipeline in real Kedro sessions: a folder of lines, a page with ground truth and a non-image,
restored with the checkpoint of a real training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.config import InferenceConfig
from htr_pipeline.pipelines.inference.nodes import InferenceInputError, restore_folder
from tests.conftest import write_line_png
from tests.pipeline_runs import run_session


def _scans(folder: Path) -> tuple[Path, Path]:
    inputs, truth = folder / "scans", folder / "truth"
    truth.mkdir(parents=True)
    write_line_png(inputs / "short_line.png", width=200, height=40, seed=1)
    write_line_png(inputs / "long_line.png", width=1400, height=48, seed=2)  # wider than max_width at 32 px
    rng = np.random.default_rng(3)
    # A page of four text lines (bands of ink specks): inference tells pages from lines by their text lines.
    page_truth = np.full((300, 260), 255, dtype=np.uint8)
    for top in (30, 100, 170, 240):
        page_truth[top : top + 30] = np.where(rng.random((30, 260)) < 0.2, 0, 255)
    page = np.clip(page_truth * 0.6 + rng.normal(60, 20, page_truth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(np.stack([page] * 3 + [np.full_like(page, 255)], axis=-1), mode="RGBA").save(inputs / "page.png")
    Image.fromarray(page_truth).save(truth / "page_gt.png")
    (inputs / "notes.txt").write_text("not an image")
    return inputs, truth


def test_inference_without_an_input_folder_or_images_says_what_to_set(tmp_path: Path):
    with pytest.raises(InferenceInputError, match=r"inference\.input_path is not set"):
        restore_folder({"checkpoint_folder": str(tmp_path)}, InferenceConfig())
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InferenceInputError, match=r"holds no image Pillow reads \(.*notes\.txt: "):
        restore_folder({"checkpoint_folder": str(tmp_path)}, InferenceConfig(input_path=str(tmp_path)))
    with pytest.raises(InferenceInputError, match="missing"):
        restore_folder({"checkpoint_folder": str(tmp_path)}, InferenceConfig(input_path=str(tmp_path / "missing")))


@pytest.mark.slow
def test_inference_restores_lines_and_pages_reads_lines_and_scores_against_ground_truth(training_project: Path):
    run_session(training_project)
    inputs, truth = _scans(training_project)
    parameters = {"inference": {"input_path": str(inputs), "ground_truth_path": str(truth), "binarise": "sauvola"}}
    catalog = run_session(training_project, "inference", runtime_params=parameters)

    results = catalog.load("inference_results").set_index("file")
    summary = catalog.load("inference_summary")
    assert results.loc["short_line.png", "kind"] == "line" and results.loc["long_line.png", "kind"] == "line"
    assert results.loc["page.png", "kind"] == "page" and results.loc["page.png", "kind_reason"] == "4 text lines found"
    assert summary["skipped"] == [{"path": str(inputs / "notes.txt"), "reason": summary["skipped"][0]["reason"]}]
    assert "Pillow" in summary["skipped"][0]["reason"]
    assert summary["with_ground_truth"] == 1
    for metric in ("f_measure", "pseudo_f_measure", "psnr_db", "drd"):
        assert np.isfinite(results.loc["page.png", f"restored_{metric}"])
        assert np.isfinite(results.loc["page.png", f"degraded_{metric}"])

    outputs = catalog.load("inference_outputs")
    for name, (width, height) in {"short_line": (200, 40), "long_line": (1400, 48), "page": (260, 300)}.items():
        assert outputs.read(f"restored/{name}.png").shape == (height, width)
        assert outputs.read(f"comparison/{name}.png").size > 0
        assert outputs.read(f"binarised/{name}.png").shape == (height, width)
    transcription = outputs.path_of("transcriptions/long_line.txt").read_text(encoding="utf-8")
    assert transcription.rstrip("\n") == results.loc["long_line.png", "transcription"]
    assert not outputs.path_of("transcriptions/page.txt").exists()
