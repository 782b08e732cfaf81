"""Every reject reason, each produced by a real malformed file."""

from pathlib import Path

import pytest

from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import TooManyRejectsError, assign_splits, ingest
from htr_pipeline.data.sources import RejectReason, SourceNotFoundError, read_sources
from tests.conftest import write_line_png


def _config(*sources: dict, **overrides) -> DataConfig:
    return DataConfig.model_validate(
        {
            "sources": list(sources),
            "image_height": 32,
            "max_label_length": 20,
            "max_reject_fraction": 1.0,
            "num_workers": 1,
            **overrides,
        }
    )


def _ingest(config: DataConfig):
    reading = read_sources(config)
    dataset = ingest(assign_splits(reading.candidates, config), reading.rejects, config)
    return dataset.manifest, dataset.rejects


@pytest.fixture
def malformed_line_folder(tmp_path: Path) -> Path:
    root = tmp_path / "lines_set"
    lines = root / "lines"
    for index, name in enumerate(
        ["good_1", "good_2", "good_3", "good_4", "empty", "long", "dup", "unlisted_split", "bad_split", "orphan"]
    ):
        write_line_png(lines / f"{name}.png", seed=index)
    write_line_png(lines / "tiny.png", width=5, height=4)
    (lines / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    (lines / "truncated.png").write_bytes((lines / "good_1.png").read_bytes()[:60])
    (root / "labels.tsv").write_text(
        "good_1.png\tLa guerre\n"
        "good_2.png\tmon testament\n"
        "good_3.png\tà Paris\n"
        "good_4.png\tœuvre\n"
        "empty.png\t   \n"
        "long.png\tthis transcription is far too long\n"
        "tiny.png\ttiny\n"
        "dup.png\tfirst\n"
        "dup.png\tsecond\n"
        "corrupt.png\tcorrupt\n"
        "truncated.png\ttruncated\n"
        "ghost.png\tno such file\n"
        "no tab on this line\n"
        "unlisted_split.png\tunlisted\n"
        "bad_split.png\tbad split\n",
        encoding="utf-8",
    )
    splits = {
        "good_1": "train",
        "good_2": "train",
        "good_3": "valid",
        "good_4": "test",
        "empty": "train",
        "long": "train",
        "tiny": "train",
        "dup": "train",
        "corrupt": "train",
        "truncated": "train",
        "ghost": "train",
        "bad_split": "val",
    }
    (root / "splits.tsv").write_text("".join(f"{name}.png\t{split}\n" for name, split in splits.items()))
    return root


def test_each_line_folder_reject_reason_with_a_real_file(malformed_line_folder: Path):
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(malformed_line_folder)}))
    reasons = {Path(path).name: reason for path, reason in rejects[["path", "reason"]].itertuples(index=False)}
    assert set(manifest["sample_id"]) == {"lines:good_1", "lines:good_2", "lines:good_3", "lines:good_4", "lines:dup"}
    assert reasons["empty.png"] == RejectReason.EMPTY_TRANSCRIPTION
    assert reasons["long.png"] == RejectReason.LABEL_TOO_LONG
    assert reasons["tiny.png"] == RejectReason.IMAGE_TOO_SMALL
    assert reasons["corrupt.png"] == RejectReason.UNREADABLE_IMAGE
    assert reasons["truncated.png"] == RejectReason.UNREADABLE_IMAGE
    assert reasons["ghost.png"] == RejectReason.MISSING_IMAGE
    assert reasons["orphan.png"] == RejectReason.MISSING_TRANSCRIPTION
    assert reasons["unlisted_split.png"] == RejectReason.NOT_IN_SPLITS
    assert reasons["bad_split.png"] == RejectReason.UNKNOWN_SPLIT
    duplicate = rejects[rejects["reason"] == RejectReason.DUPLICATE_ID]
    assert duplicate["detail"].str.contains("labels.tsv:9").all()
    malformed = rejects[rejects["reason"] == RejectReason.MALFORMED_LABEL_LINE]
    assert malformed["detail"].str.contains("labels.tsv:13").all()
    assert len(rejects) == 11
    assert manifest.set_index("sample_id").loc["lines:dup", "transcription"] == "first"


def test_too_many_rejects_fail_with_the_reasons(malformed_line_folder: Path):
    config = _config({"kind": "line_folder", "path": str(malformed_line_folder)}, max_reject_fraction=0.2)
    with pytest.raises(TooManyRejectsError, match=r"11 of 16 inputs rejected .*data.max_reject_fraction"):
        _ingest(config)


def test_text_sidecar_layout(tmp_path: Path):
    for index, text in enumerate(["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"]):
        write_line_png(tmp_path / f"page/line_{index}.png", seed=index)
        (tmp_path / f"page/line_{index}.txt").write_text(text + "\n")
    write_line_png(tmp_path / "page/no_text.png")
    (tmp_path / "page/no_image.txt").write_text("lonely")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "path": str(tmp_path)}))
    assert len(manifest) == 10
    assert set(manifest["split"]) <= {"train", "valid", "test"}
    assert sorted(rejects["reason"]) == [RejectReason.MISSING_IMAGE, RejectReason.MISSING_TRANSCRIPTION]
    assert manifest["degraded_origin"].eq("synthesised").all()


def test_paired_folder_reject_reasons(tmp_path: Path):
    for index in range(10):
        write_line_png(tmp_path / f"images/p{index}.png", seed=index)
        write_line_png(tmp_path / f"gt/p{index}_gt.png", seed=100 + index)
    write_line_png(tmp_path / "images/no_gt.png")
    write_line_png(tmp_path / "images/mismatch.png", width=120)
    write_line_png(tmp_path / "gt/mismatch_gt.png", width=80)
    write_line_png(tmp_path / "gt/lonely_gt.png")
    manifest, rejects = _ingest(_config({"kind": "paired_folder", "path": str(tmp_path)}))
    assert len(manifest) == 10
    assert manifest["transcription"].isna().all()
    assert manifest["degraded_origin"].eq("source").all()
    assert sorted(rejects["reason"]) == sorted(
        [RejectReason.MISSING_CLEAN_IMAGE, RejectReason.SIZE_MISMATCH, RejectReason.MISSING_IMAGE]
    )


def test_missing_source_folder_names_the_key(tmp_path: Path):
    config = _config({"kind": "line_folder", "path": str(tmp_path / "nowhere")})
    with pytest.raises(SourceNotFoundError, match=r"data\.sources\[0\]\.path: folder .*nowhere.* does not exist"):
        read_sources(config)


def test_several_sources_combine_with_distinct_ids(tmp_path: Path):
    for index, text in enumerate(["alpha", "beta", "gamma", "delta", "epsilon"]):
        write_line_png(tmp_path / f"mine/l{index}.png", seed=index)
        (tmp_path / f"mine/l{index}.txt").write_text(text)
    for index in range(4):
        write_line_png(tmp_path / f"pairs/images/l{index}.png", seed=index)
        write_line_png(tmp_path / f"pairs/gt/l{index}_gt.png", seed=index)
    synthetic = {"kind": "synthetic", "lines_per_split": {"train": 4, "valid": 2, "test": 1}, "line_chars": [4, 10]}
    config = _config(
        synthetic,
        {"kind": "line_folder", "name": "mine", "path": str(tmp_path / "mine")},
        {"kind": "paired_folder", "name": "pairs", "path": str(tmp_path / "pairs"), "image_type": "line"},
    )
    manifest, rejects = _ingest(config)
    assert manifest.groupby("source").size().to_dict() == {"mine": 5, "pairs": 4, "synthetic": 7}
    assert manifest["sample_id"].is_unique and len(rejects) == 0
    assert (manifest["height"] == 32).all()
    assert manifest["clean_path"].str.startswith(("clean/mine/", "clean/pairs/", "clean/synthetic/")).all()
