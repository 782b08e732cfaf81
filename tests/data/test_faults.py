"""One bad input never stops a run nor touches a file outside the project: each fault with a real file."""

from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.data.ingestion import charset_document
from htr_pipeline.data.materialise import _output_path
from htr_pipeline.data.report import summarise_dataset
from htr_pipeline.data.sources import RejectReason, SourceEncodingError
from htr_pipeline.datasets.file_folder import FileFolderDataset
from tests.conftest import write_line_png
from tests.data.test_sources import _config, _ingest

GOOD_TEXTS = ["un", "deux", "trois", "quatre", "cinq", "six"]


def _good_lines(folder: Path) -> str:
    """Six good lines in ``folder``; their ``labels.tsv`` rows."""
    for index in range(len(GOOD_TEXTS)):
        write_line_png(folder / f"good_{index}.png", seed=index)
    return "".join(f"good_{index}.png\t{text}\n" for index, text in enumerate(GOOD_TEXTS))


def _reasons(rejects) -> dict[str, str]:
    return dict(zip(rejects["reason"], rejects["detail"], strict=True))


# ------------------------------------------------------------------------------------------- path traversal


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    return write_line_png(tmp_path / "outside" / "victim.png", seed=99)


def test_a_labels_key_climbing_out_of_the_source_is_rejected_and_never_read(tmp_path: Path, victim: Path):
    root = tmp_path / "set"
    before = victim.read_bytes()
    rows = _good_lines(root / "lines")
    (root / "labels.tsv").write_text(rows + f"../../outside/victim.png\tvictim\n{victim}\tabsolute\n")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert victim.read_bytes() == before
    escaping = rejects[rejects["reason"] == RejectReason.PATH_OUTSIDE_SOURCE]
    assert len(escaping) == 2 and len(manifest) == len(GOOD_TEXTS)
    assert escaping["detail"].str.contains("labels.tsv:7: '../../outside/victim.png' resolves to").any()
    assert escaping["detail"].str.contains("outside the source folder").all()


def test_a_symbolic_link_out_of_the_source_is_rejected(tmp_path: Path, victim: Path):
    root = tmp_path / "sidecar"
    for index, text in enumerate(GOOD_TEXTS):
        write_line_png(root / f"line_{index}.png", seed=index)
        (root / f"line_{index}.txt").write_text(text)
    (root / "linked.png").symlink_to(victim)
    (root / "linked.txt").write_text("linked")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "side", "path": str(root)}))
    assert list(rejects["reason"]) == [RejectReason.PATH_OUTSIDE_SOURCE]
    assert "(a symbolic link) resolves to" in rejects["detail"].iloc[0] and len(manifest) == len(GOOD_TEXTS)


def test_paired_folder_tsv_keys_outside_the_source_are_rejected(tmp_path: Path, victim: Path):
    root = tmp_path / "pairs"
    for index in range(6):
        write_line_png(root / f"images/p{index}.png", seed=index)
        write_line_png(root / f"gt/p{index}_gt.png", seed=index)
    (root / "labels.tsv").write_text("p0.png\tzero\n../../outside/victim.png\tvictim\n")
    splits = "".join(f"p{index}.png\ttrain\n" for index in range(5)) + "p5.png\tvalid\n"
    (root / "splits.tsv").write_text(splits + "../../outside/victim.png\ttrain\n")
    manifest, rejects = _ingest(_config({"kind": "paired_folder", "path": str(root), "image_type": "line"}))
    assert list(rejects["reason"]) == [RejectReason.PATH_OUTSIDE_SOURCE]
    assert "labels.tsv:2" in rejects["detail"].iloc[0] and len(manifest) == 6


def test_an_id_with_dot_dot_parts_is_written_inside_the_output_folder(tmp_path: Path):
    root = tmp_path / "set"
    rows = _good_lines(root / "lines")
    write_line_png(root / "lines" / "..." / "odd.png")
    (root / "labels.tsv").write_text(rows + ".../odd.png\todd\n")
    manifest, _ = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert "clean/lines/.../odd.png" in set(manifest["clean_path"])
    assert _output_path("../../outside/victim") == "%2E%2E/%2E%2E/outside/victim"
    assert _output_path("/etc/passwd") == "%/etc/passwd"


def test_the_image_store_refuses_a_path_out_of_its_folder(tmp_path: Path, victim: Path):
    before = victim.read_bytes()
    store = FileFolderDataset(filepath=str(tmp_path / "store" / "line_images"))
    pixels = np.asarray(Image.open(write_line_png(tmp_path / "x.png")).convert("L"))
    with pytest.raises(DatasetError, match=r"'\.\./\.\./outside/victim\.png' would be written to .*outside"):
        store.save({"clean/ok.png": pixels, "../../outside/victim.png": pixels})
    assert victim.read_bytes() == before
    assert not (tmp_path / "store" / "line_images" / "clean" / "ok.png").exists()


# ------------------------------------------------------------------------------------ one bad file, one reject


def test_a_decompression_bomb_png_is_rejected_with_its_size(tmp_path: Path):
    root = tmp_path / "set"
    rows = _good_lines(root / "lines")
    Image.new("1", (15000, 12000), 1).save(root / "lines" / "huge.png")
    Image.new("L", (2000, 600), 255).save(root / "lines" / "big.png")
    (root / "labels.tsv").write_text(rows + "huge.png\thuge\nbig.png\tbig\n")
    config = _config({"kind": "line_folder", "name": "lines", "path": str(root)}, max_image_pixels=1_000_000)
    manifest, rejects = _ingest(config)
    assert (root / "lines" / "huge.png").stat().st_size < 100_000 and len(manifest) == len(GOOD_TEXTS)
    too_large = rejects[rejects["reason"] == RejectReason.IMAGE_TOO_LARGE].set_index("sample_id")["detail"]
    assert "2000 x 600 px = 1,200,000 pixels > data.max_image_pixels=1,000,000" in too_large["lines:big"]
    assert "180000000 pixels" in too_large["lines:huge"]
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's global limit is left alone


def test_max_image_pixels_cannot_exceed_what_pillow_opens():
    with pytest.raises(ValueError, match="max_image_pixels"):
        _config({"kind": "line_folder", "path": "."}, max_image_pixels=200_000_000)


def test_a_utf16_labels_file_is_one_error_naming_file_and_encoding(tmp_path: Path):
    root = tmp_path / "set"
    rows = _good_lines(root / "lines")
    (root / "labels.tsv").write_text(rows, encoding="utf-16")
    with pytest.raises(SourceEncodingError) as raised:
        _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    message = str(raised.value)
    assert f"{root / 'labels.tsv'} is not UTF-8 text (it starts with a UTF-16 byte-order mark)" in message
    assert "save it as UTF-8" in message and "iconv -f UTF-16 -t UTF-8 labels.tsv" in message


def test_a_labels_file_with_a_utf8_byte_order_mark_is_read(tmp_path: Path):
    root = tmp_path / "set"
    (root / "labels.tsv").parent.mkdir(parents=True, exist_ok=True)
    (root / "labels.tsv").write_text(_good_lines(root / "lines"), encoding="utf-8-sig")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert len(manifest) == len(GOOD_TEXTS) and len(rejects) == 0


def test_a_latin1_sidecar_text_is_one_reject_and_the_rest_ingests(tmp_path: Path):
    for index, text in enumerate(GOOD_TEXTS):
        write_line_png(tmp_path / f"line_{index}.png", seed=index)
        (tmp_path / f"line_{index}.txt").write_text(text)
    write_line_png(tmp_path / "latin.png")
    (tmp_path / "latin.txt").write_bytes("déjà vu".encode("latin-1"))
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "side", "path": str(tmp_path)}))
    assert len(manifest) == len(GOOD_TEXTS)
    assert list(rejects["reason"]) == [RejectReason.UNDECODABLE_TEXT]
    assert rejects["detail"].iloc[0] == (
        f"{tmp_path / 'latin.txt'} is not UTF-8 text: byte 0xe9 at offset 1, line 1; the project reads UTF-8, "
        "with or without a byte-order mark"
    )


# --------------------------------------------------------------------------------------- invisible characters


def test_invisible_characters_are_removed_and_reported_and_controls_rejected(tmp_path: Path):
    root = tmp_path / "set"
    rows = _good_lines(root / "lines")
    for name in ("soft", "bell", "nul"):
        write_line_png(root / "lines" / f"{name}.png")
    (root / "labels.tsv").write_text(
        rows + "soft.png\tmon\u00adde\u200bmain\ufeff\nbell.png\tding\x07\nnul.png\ta\x00b\n"
    )
    config = _config({"kind": "line_folder", "name": "lines", "path": str(root)})
    manifest, rejects = _ingest(config)
    assert manifest.set_index("sample_id").loc["lines:soft", "transcription"] == "mondemain"
    controls = rejects.set_index("sample_id")["detail"]
    assert set(rejects["reason"]) == {RejectReason.CONTROL_CHARACTER}
    assert controls["lines:bell"] == f"control character U+0007 in the transcription in {root / 'labels.tsv'}"
    assert controls["lines:nul"].startswith("control character U+0000")
    charset = Charset.from_dict(charset_document(manifest))
    report = summarise_dataset(manifest, rejects, charset)
    assert report["text_changes"] == {"U+00AD": 1, "U+200B": 1, "U+FEFF": 1}
    assert report["rejects_per_reason"] == {"control_character": 2}


# ------------------------------------------------------------------------------------ splits.tsv without files


def _splits(count: int) -> str:
    return "".join(f"good_{index}.png\t{'valid' if index == 0 else 'train'}\n" for index in range(count))


def test_a_splits_line_naming_no_file_is_a_missing_image_reject(tmp_path: Path):
    root = tmp_path / "set"
    (root / "labels.tsv").parent.mkdir(parents=True, exist_ok=True)
    (root / "labels.tsv").write_text(_good_lines(root / "lines"))
    (root / "splits.tsv").write_text(_splits(len(GOOD_TEXTS)) + "gone.png\ttest\n")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert len(manifest) == len(GOOD_TEXTS)
    assert _reasons(rejects) == {
        RejectReason.MISSING_IMAGE: f"{root / 'splits.tsv'}:7: lists 'gone.png' but the file does not exist"
    }


def test_sidecar_and_paired_splits_lines_naming_no_file_are_rejects(tmp_path: Path):
    sidecar = tmp_path / "sidecar"
    for index, text in enumerate(GOOD_TEXTS):
        write_line_png(sidecar / f"good_{index}.png", seed=index)
        (sidecar / f"good_{index}.txt").write_text(text)
    (sidecar / "splits.tsv").write_text(_splits(len(GOOD_TEXTS)) + "gone.png\ttest\n")
    pairs = tmp_path / "pairs"
    for index in range(len(GOOD_TEXTS)):
        write_line_png(pairs / f"images/good_{index}.png", seed=index)
        write_line_png(pairs / f"gt/good_{index}_gt.png", seed=index)
    (pairs / "splits.tsv").write_text(_splits(len(GOOD_TEXTS)) + "gone.png\ttest\n")
    config = _config(
        {"kind": "line_folder", "name": "side", "path": str(sidecar)},
        {"kind": "paired_folder", "name": "pairs", "path": str(pairs), "image_type": "line"},
    )
    manifest, rejects = _ingest(config)
    assert len(manifest) == 2 * len(GOOD_TEXTS)
    assert sorted(rejects["sample_id"]) == ["pairs:gone", "side:gone"]
    assert rejects["detail"].str.endswith("splits.tsv:7: lists 'gone.png' but the file does not exist").all()
