"""Split hygiene on real PNG lines rendered with PIL's font and read back through a LineImageStore: groups in two
splits, noisy copies of a train line in other splits, and distinct lines that must not be reported."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from htr_pipeline.config import DiagnosticsConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.diagnostics.split_hygiene import (
    hamming_distance_chunks,
    pad_to_aspect,
    plot_split_hygiene,
    split_hygiene_report,
)

LINE_HEIGHT_PX = 64  # the laptop data set's image_height
TEXTS_BY_SPLIT = {
    "train": ["hello world", "quiet river", "the old mill", "paper and ink", "a faded letter", "seven ships"],
    "valid": ["north wind", "little garden", "morning bell"],
    "test": ["stone bridge", "green field", "silver moon"],
}

DEFAULT_HASH_SIZE = DiagnosticsConfig().near_duplicate_hash_size
DEFAULT_MAX_DISTANCE = DiagnosticsConfig().near_duplicate_max_distance


def render_line(text: str, font_size: int = 40) -> np.ndarray:
    """(64, width) uint8: black text on white paper with a 6 px margin either side."""
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 12, LINE_HEIGHT_PX), color=255)
    ImageDraw.Draw(image).text((6 - left, (LINE_HEIGHT_PX - (bottom - top)) // 2 - top), text, font=font, fill=0)
    return np.asarray(image, dtype=np.uint8)


def noisy_copy(image: np.ndarray, seed: int, noise_sigma: float = 10.0) -> np.ndarray:
    """The image with Gaussian noise, re-saved as JPEG (quality 70): a re-scanned or re-exported copy."""
    noisy = np.clip(image + np.random.default_rng(seed).normal(0.0, noise_sigma, image.shape), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=70)
    return np.asarray(Image.open(buffer).convert("L"))


class LineFolder:
    """Real PNG files under one root, the manifest rows that point at them, and the store that reads them."""

    def __init__(self, root: Path):
        self.store = LineImageStore(root)
        self.rows: list[dict] = []

    def add(
        self,
        sample_id: str,
        split: str,
        image: np.ndarray,
        text: str | None,
        group: str | None = None,
        clean: bool = True,
    ) -> None:
        relative_path = f"{'clean' if clean else 'degraded'}/{sample_id}.png"
        target = self.store.path_of(relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target)
        self.rows.append(
            {
                "sample_id": sample_id,
                "split": split,
                "group": group,
                "image_type": "line",
                "transcription": text,
                "clean_path": relative_path if clean else None,
                "degraded_path": relative_path if not clean else f"degraded/{sample_id}.png",
            }
        )

    def manifest(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


@pytest.fixture
def distinct_lines(tmp_path: Path) -> LineFolder:
    """Twelve lines, each text once: 6 train, 3 valid, 3 test."""
    folder = LineFolder(tmp_path / "line_images")
    for split, texts in TEXTS_BY_SPLIT.items():
        for index, text in enumerate(texts):
            folder.add(f"{split}-{index}", split, render_line(text), text)
    return folder


def _report(folder: LineFolder):
    return split_hygiene_report(folder.manifest(), folder.store, DEFAULT_HASH_SIZE, DEFAULT_MAX_DISTANCE)


def _pairs(report) -> list[tuple[str, str, bool | None]]:
    return [
        (record["sample_id_a"], record["sample_id_b"], record["same_transcription"])
        for record in report.details["near_duplicates"]
    ]


def test_noisy_copies_of_a_train_line_in_valid_and_test_are_a_problem_and_distinct_lines_are_not_reported(
    distinct_lines: LineFolder,
):
    original = render_line("paper and ink")  # train-3
    distinct_lines.add("valid-copy", "valid", noisy_copy(original, seed=1), "paper and ink")
    distinct_lines.add("test-copy", "test", noisy_copy(original, seed=2, noise_sigma=15.0), "paper and ink")

    report = _report(distinct_lines)

    # The two copies also match each other (valid vs test); no distinct line comes near anything.
    assert sorted(_pairs(report)) == [
        ("train-3", "test-copy", True),
        ("train-3", "valid-copy", True),
        ("valid-copy", "test-copy", True),
    ]
    assert all(record["distance"] <= DEFAULT_MAX_DISTANCE for record in report.details["near_duplicates"])
    assert [finding.verdict for finding in report.findings] == ["problem"]
    assert "3 cross-split image pair(s) are near-duplicates" in report.findings[0].message
    assert "valid valid-copy ~ train train-3" in report.findings[0].message


def test_a_recut_copy_of_a_short_line_still_matches_because_lines_are_padded_not_stretched(
    distinct_lines: LineFolder,
):
    # Squashed to a square unpadded, this 90 px line and its copy (2 px further right, 1 px narrower) differ in
    # about 570 of 1,024 bits; padded to 8:1 they differ in about 90.
    short_line = render_line("quill")
    distinct_lines.add("train-short", "train", short_line, "quill")
    recut = np.pad(short_line, ((0, 0), (2, 0)), constant_values=255)[:, : short_line.shape[1] - 1]
    distinct_lines.add("valid-recut", "valid", recut, "quill")

    report = _report(distinct_lines)

    assert _pairs(report) == [("train-short", "valid-recut", True)]


def test_a_copy_with_another_transcription_is_a_warning_not_a_problem(distinct_lines: LineFolder):
    distinct_lines.add("valid-relabelled", "valid", noisy_copy(render_line("seven ships"), seed=3), "seven chips")

    report = _report(distinct_lines)

    assert _pairs(report) == [("train-5", "valid-relabelled", False)]
    assert [finding.verdict for finding in report.findings] == ["warning"]
    assert "transcriptions differ or are absent" in report.findings[0].message


def test_a_sample_without_a_clean_image_is_hashed_from_its_degraded_image(distinct_lines: LineFolder):
    copy = noisy_copy(render_line("hello world"), seed=4)
    distinct_lines.add("test-degraded-only", "test", copy, None, clean=False)

    report = _report(distinct_lines)

    assert _pairs(report) == [("train-0", "test-degraded-only", None)]
    assert report.verdict == "warning"  # no text to confirm it is the same line


def test_the_same_words_rendered_differently_are_counted_but_not_near_duplicates(distinct_lines: LineFolder):
    distinct_lines.add("valid-same-words", "valid", render_line("quiet river", font_size=32), "quiet river")

    report = _report(distinct_lines)

    assert report.details["near_duplicates"] == []
    assert report.details["transcriptions_in_several_splits"] == {
        "texts": 1,
        "samples": 2,
        "examples": ["quiet river"],
    }
    assert report.verdict == "ok"


def test_a_group_in_train_and_valid_is_a_problem_with_its_counts(tmp_path: Path):
    folder = LineFolder(tmp_path / "line_images")
    for sample_id, split, text, group in [
        ("a", "train", "hello world", "writer-1"),
        ("b", "train", "quiet river", "writer-1"),
        ("c", "valid", "north wind", "writer-1"),
        ("d", "train", "the old mill", "writer-2"),
        ("e", "valid", "stone bridge", None),
        ("f", "test", "green field", None),
    ]:
        folder.add(sample_id, split, render_line(text), text, group=group)

    report = _report(folder)

    assert report.details["groups_in_several_splits"] == [
        {"group": "writer-1", "samples_per_split": {"train": 2, "valid": 1}}
    ]
    assert [finding.verdict for finding in report.findings] == ["problem"]
    assert "'writer-1' (train 2, valid 1)" in report.findings[0].message


def test_clean_splits_are_ok_with_the_numbers_and_the_report_and_plot_are_json_safe(distinct_lines: LineFolder):
    report = _report(distinct_lines)

    assert [finding.verdict for finding in report.findings] == ["ok"]
    # 6 x 3 (train-valid) + 6 x 3 (train-test) + 3 x 3 (valid-test) pairs
    assert report.findings[0].message.startswith(
        "No sample has a group (each is its own), and none of the 45 cross-split pairs of the 12 hashed images is "
        f"within {DEFAULT_MAX_DISTANCE} of {DEFAULT_HASH_SIZE**2} hash bits (closest: "
    )
    details = json.loads(json.dumps(report.to_dict()))
    assert details["samples_hashed_per_split"] == {"train": 6, "valid": 3, "test": 3}
    assert len(details["nearest_cross_split_distances"]) == 12
    assert min(details["nearest_cross_split_distances"]) > DEFAULT_MAX_DISTANCE
    buffer = io.BytesIO()
    plot_split_hygiene(report.details).savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000


def test_packed_hamming_distances_equal_a_bit_by_bit_count():
    rng = np.random.default_rng(0)
    hashes_a, hashes_b = rng.random((7, 100)) < 0.5, rng.random((5, 100)) < 0.5  # 100 bits: not whole words
    expected = (hashes_a[:, None, :] != hashes_b[None, :, :]).sum(axis=2)
    blocks = dict(hamming_distance_chunks(hashes_a, hashes_b))
    assert list(blocks) == [0]
    np.testing.assert_array_equal(blocks[0], expected)


def test_a_short_line_is_padded_with_its_paper_tone_not_stretched():
    line = np.full((64, 100), 230, dtype=np.uint8)
    line[20:40, 10:90] = 15  # ink
    padded = pad_to_aspect(line, aspect=8)
    assert padded.shape == (64, 512)
    np.testing.assert_array_equal(padded[:, :100], line)
    assert (padded[:, 100:] == 230).all()
