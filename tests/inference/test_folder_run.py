"""Inference over a folder with a real tiny (untrained) checkpoint: line or page from the content, refusals and
failures of one input skipped with the reason, a bad ground truth a skipped comparison, flagged readings,
outputs written one input at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from htr_pipeline.config import InferenceConfig
from htr_pipeline.datasets.version_folders import VersionFolderDataset
from htr_pipeline.inference.inputs import list_input_images
from htr_pipeline.inference.layout import count_text_lines, decide_kind
from htr_pipeline.inference.restoration import RUN_RECORD, lazy_outputs, run_inference
from htr_pipeline.pipelines.inference.nodes import summarise_folder
from htr_pipeline.trained_run import TrainedRun
from tests.conftest import SHARED_DATA
from tests.trained_runs import tiny_trained_checkpoint

DIBCO = SHARED_DATA / "dibco_2009_2011"
POILUS = SHARED_DATA / "testaments_poilus_fr" / "lines"


def _text_block(lines: int, width: int = 600, line_height: int = 40, seed: int = 0) -> np.ndarray:
    """Paper with ``lines`` rows of stroke-like ink, one text line each, separated by blank rows."""
    rng = np.random.default_rng(seed)
    page = np.full((lines * line_height * 2 + line_height, width), 230, dtype=np.uint8)
    for index in range(lines):
        top = line_height + index * 2 * line_height
        for x in rng.integers(10, width - 10, size=width // 8):
            page[top + 8 : top + line_height - 8, x : x + 3] = 30
    return page


@pytest.fixture
def tiny_run(tmp_path: Path) -> TrainedRun:
    return TrainedRun.from_checkpoint(tiny_trained_checkpoint(), tmp_path / "tiny.pt")


def test_text_lines_are_counted_from_the_ink_profile_not_the_shape():
    four_lines = _text_block(4, width=1700)  # wide like the DIBCO 2010-H05 page read as one line by the shape
    assert count_text_lines(four_lines).count == 4
    decision = decide_kind(four_lines, "auto", 4.0)
    assert decision.kind == "page" and decision.reason == "4 text lines found"
    short_line = _text_block(1, width=300)[20:100]  # 300 x 80: aspect 3.75 < line_min_aspect, still a line
    assert decide_kind(short_line, "auto", 4.0).kind == "line"
    assert decide_kind(short_line, "pages", 4.0).reason == "inference.mode=pages"
    assert decide_kind(np.full((50, 400), 255, dtype=np.uint8), "auto", 4.0).reason.startswith("no ink found")


@pytest.mark.skipif(not DIBCO.is_dir(), reason="shared DIBCO pages absent (../shared/data)")
def test_real_pages_and_real_lines_are_told_apart():
    from htr_pipeline.data.images import read_grayscale

    page = read_grayscale(DIBCO / "images" / "2010-H05.png")  # 1726 x 391, four lines
    assert decide_kind(page, "auto", 4.0).kind == "page"
    pages = [decide_kind(read_grayscale(path), "auto", 4.0).kind for path in sorted((DIBCO / "images").iterdir())]
    lines = [decide_kind(read_grayscale(path), "auto", 4.0).kind for path in sorted(POILUS.glob("*.png"))[::20]]
    assert pages.count("page") >= 30 and lines.count("line") >= 0.9 * len(lines)


def test_a_folder_is_restored_with_reasons_refusals_and_skipped_comparisons(tmp_path: Path, tiny_run: TrainedRun):
    scans, truth = tmp_path / "scans", tmp_path / "truth"
    scans.mkdir()
    truth.mkdir()
    Image.fromarray(_text_block(1, width=300)[20:100]).save(scans / "line.png")
    Image.fromarray(_text_block(3, width=240)).save(scans / "page.png")
    Image.fromarray(np.full((1, 4000), 0, dtype=np.uint8)).save(scans / "sliver.png")  # a 1 x 4,000 px "line"
    Image.fromarray(np.full((10, 10), 0, dtype=np.uint8)).save(truth / "page_gt.png")  # the wrong size
    (truth / "line_gt.png").write_bytes(b"not an image")
    config = InferenceConfig(
        input_path=scans, ground_truth_path=truth, page_window=64, window_overlap=16, min_reading_confidence=0.99
    )
    inputs, skipped = list_input_images(scans)
    result = run_inference(inputs, skipped, tiny_run, config, torch.device("cpu"))

    table = result.table.set_index("file")
    assert table.loc["line.png", "kind"] == "line" and table.loc["page.png", "kind"] == "page"
    assert table.loc["page.png", "kind_reason"] == "3 text lines found"
    assert "ground truth is 10 x 10 px" in table.loc["page.png", "ground_truth_skipped"]
    assert "cannot read image" in table.loc["line.png", "ground_truth_skipped"]
    summary = result.summary
    assert [item["path"] for item in summary["skipped"]] == [str(scans / "sliver.png")]
    assert "past inference.max_line_aspect=100" in summary["skipped"][0]["reason"]
    assert summary["with_ground_truth"] == 0 and len(summary["ground_truth_skipped"]) == 2
    # An untrained recognizer reads nonsense: the reading is flagged, not passed off as a transcription.
    assert summary["readings_flagged"] == 1 and table.loc["line.png", "reading_flag"]
    assert {"restored/line.png", "restored/page.png", "comparison/line.png", "transcriptions/line.txt"} <= set(
        result.files
    )


def test_outputs_are_written_one_input_at_a_time_and_summarised_from_disk(tmp_path: Path, tiny_run: TrainedRun):
    scans = tmp_path / "scans"
    scans.mkdir()
    for index in range(3):
        Image.fromarray(_text_block(3, width=200, seed=index)).save(scans / f"page_{index}.png")
    config = InferenceConfig(input_path=scans, page_window=64, window_overlap=16, mode="pages")
    inputs, skipped = list_input_images(scans)
    entries = lazy_outputs(inputs, skipped, tiny_run, config, torch.device("cpu"))
    assert list(entries) == ["page_0", "page_1", "page_2", RUN_RECORD]
    assert all(callable(entry) for entry in entries.values())  # nothing restored before the save asks

    seen_on_disk: list[int] = []
    dataset = VersionFolderDataset(filepath=str(tmp_path / "out"))
    original = entries["page_2"]

    def third() -> dict:
        # when the third input is made, the first two are already written (in the hidden partial folder)
        seen_on_disk.append(len(list((tmp_path / ".out.partial" / "restored").glob("*.png"))))
        return original()

    entries["page_2"] = third
    dataset.save(entries)
    assert seen_on_disk == [2]
    table, summary = summarise_folder(dataset.load(), config)
    assert list(table["file"]) == ["page_0.png", "page_1.png", "page_2.png"] and summary["pages"] == 3


def test_a_checkpoint_setting_naming_a_folder_is_one_line_naming_its_files(tmp_path: Path):
    from htr_pipeline.checkpoints import CheckpointError, resolve_checkpoint

    (tmp_path / "run" / "gan").mkdir(parents=True)
    (tmp_path / "run" / "gan" / "best.pt").write_bytes(b"")

    def never(run_id: str) -> str:
        raise AssertionError(f"{run_id} looked up in MLflow")

    with pytest.raises(CheckpointError, match=r"is a folder; name a checkpoint file in it \(best\.pt\)"):
        resolve_checkpoint(str(tmp_path / "run"), "best", None, never)
