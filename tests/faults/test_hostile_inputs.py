"""The issue 24 probe's classes, one real hostile file each: the run goes on, the file is a reject naming it and
saying why, text is never cut or changed without a count, and images without content are never kept."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from htr_pipeline.config import ConfigError, DataConfig, validate_parameters
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.sources import RejectReason, read_sources
from tests.conftest import write_line_png
from tests.data.test_sources import _config

PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
ALTO_V4 = "http://www.loc.gov/standards/alto/ns-v4#"
GOOD_TEXTS = ["un", "deux", "trois", "quatre", "cinq", "six"]


def _ingest(config: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kept samples (manifest rows) and rejects of reading and materialising every source (no split needed)."""
    reading = read_sources(config)
    samples, rejects = materialise_all(reading.candidates, config)
    manifest = pd.DataFrame(
        [sample.manifest_row for sample in samples], columns=["sample_id", "transcription", "text_changes"]
    )
    table = pd.DataFrame(
        [reject.__dict__ for reject in [*reading.rejects, *rejects]],
        columns=["source", "sample_id", "path", "reason", "detail"],
    )
    return manifest, table


def _good_rows(folder: Path) -> str:
    for index in range(len(GOOD_TEXTS)):
        write_line_png(folder / f"good_{index}.png", seed=index)
    return "".join(f"good_{index}.png\t{text}\n" for index, text in enumerate(GOOD_TEXTS))


def _lines_config(root: Path, **overrides) -> DataConfig:
    return _config({"kind": "line_folder", "name": "lines", "path": str(root)}, **overrides)


def _by_id(rejects: pd.DataFrame) -> dict[str, tuple[str, str]]:
    return {row.sample_id: (row.reason, row.detail) for row in rejects.itertuples()}


# ------------------------------------------------------------------------------------------------- page XML


def _page(folder: Path, name: str, lines: str, width="400", height="300", order="", prolog="") -> Path:
    pixels = np.full((300, 400), 230, dtype=np.uint8)
    pixels[42:58, 20:380:6] = 30
    pixels[102:118, 20:380:6] = 30
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / f"{name}.png")
    xml = (
        f'{prolog}<PcGts xmlns="{PAGE_2019}"><Page imageFilename="{name}.png" imageWidth="{width}" '
        f'imageHeight="{height}">{order}<TextRegion id="r">{lines}</TextRegion></Page></PcGts>'
    )
    path = folder / f"{name}.xml"
    path.write_text(xml, encoding="utf-8")
    return path


def _line(line_id: str, points: str = "20,40 380,40 380,60 20,60", text: str = "ligne") -> str:
    equiv = f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv>"
    return f'<TextLine id="{line_id}"><Coords points="{points}"/>{equiv}</TextLine>'


def _good_page(folder: Path) -> None:
    _page(folder, "good", _line("g1") + _line("g2", "20,100 380,100 380,120 20,120", "autre"))


def _pages_config(folder: Path, **settings) -> DataConfig:
    return _config({"kind": "xml_pages", "name": "pages", "path": str(folder), **settings})


@pytest.mark.parametrize(
    ("width", "points", "what"),
    [
        ("inf", "20,40 380,40 380,60 20,60", "imageWidth"),
        ("400", "20,40 inf,40 380,60 20,60", "points"),
        ("400", "20,40 nan,40 380,60 20,60", "points"),
        ("400", "20,40 1e400,40 380,60 20,60", "points"),
    ],
)
def test_a_page_with_a_non_finite_number_is_a_reject_and_the_run_goes_on(tmp_path, width, points, what):
    _good_page(tmp_path)
    _page(tmp_path, "bad", _line("b1", points), width=width)
    manifest, rejects = _ingest(_pages_config(tmp_path))
    assert sorted(manifest["sample_id"]) == ["pages:good/g1", "pages:good/g2"]
    assert len(rejects) == 1 and rejects["reason"].iloc[0] == RejectReason.XML_PARSE_ERROR
    assert what in rejects["detail"].iloc[0] and str(tmp_path / "bad.xml") in rejects["detail"].iloc[0]


def test_a_reading_order_index_that_is_a_word_is_a_reject(tmp_path):
    _good_page(tmp_path)
    reference = '<RegionRefIndexed index="first" regionRef="r"/>'
    order = f'<ReadingOrder><OrderedGroup id="o">{reference}</OrderedGroup></ReadingOrder>'
    _page(tmp_path, "bad", _line("b1"), order=order)
    manifest, rejects = _ingest(_pages_config(tmp_path))
    assert len(manifest) == 2 and list(rejects["reason"]) == [RejectReason.XML_PARSE_ERROR]
    assert "RegionRefIndexed@index 'first'" in rejects["detail"].iloc[0]


def test_alto_positions_that_are_not_numbers_are_a_reject(tmp_path):
    _good_page(tmp_path)
    Image.fromarray(np.full((300, 400), 230, dtype=np.uint8)).save(tmp_path / "alto.png")
    (tmp_path / "alto.xml").write_text(
        f'<alto xmlns="{ALTO_V4}"><Description><MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation>'
        '<fileName>alto.png</fileName></sourceImageInformation></Description><Layout><Page WIDTH="400" HEIGHT="300">'
        '<PrintSpace><TextBlock ID="b"><TextLine ID="a1" HPOS="20px" VPOS="40" WIDTH="300" HEIGHT="20" BASELINE="x">'
        '<String CONTENT="mot"/></TextLine></TextBlock></PrintSpace></Page></Layout></alto>'
    )
    manifest, rejects = _ingest(_pages_config(tmp_path))
    assert len(manifest) == 2 and list(rejects["reason"]) == [RejectReason.XML_PARSE_ERROR]
    assert "HPOS" in rejects["detail"].iloc[0]


@pytest.mark.parametrize("points", ["200,50", "20,50 380,50", "20,50 20,50 20,50"])
@pytest.mark.parametrize("mask", ["polygon", "bbox"])
def test_a_polygon_without_area_is_rejected_before_cropping(tmp_path, points, mask):
    _good_page(tmp_path)
    _page(tmp_path, "bad", _line("b1", points))
    manifest, rejects = _ingest(_pages_config(tmp_path, line_mask=mask, margin_px=6))
    assert sorted(manifest["sample_id"]) == ["pages:good/g1", "pages:good/g2"]
    assert list(rejects["reason"]) == [RejectReason.DEGENERATE_GEOMETRY]
    assert "line b1" in rejects["detail"].iloc[0]


def test_a_line_id_longer_than_a_file_name_may_be_is_a_reject(tmp_path):
    _good_page(tmp_path / "pages")
    _page(tmp_path / "pages", "bad", _line("x" * 300))
    manifest, rejects = _ingest(_pages_config(tmp_path / "pages"))
    assert len(manifest) == 2 and list(rejects["reason"]) == [RejectReason.NAME_TOO_LONG]
    assert "255 bytes" in rejects["detail"].iloc[0]


def test_an_internal_entity_is_resolved_counted_and_the_text_kept_whole(tmp_path):
    prolog = '<?xml version="1.0"?><!DOCTYPE PcGts [<!ENTITY eacute "é">]>'
    _page(tmp_path, "page", _line("e1", text="caf&eacute; noir"), prolog=prolog)
    manifest, rejects = _ingest(_pages_config(tmp_path))
    assert len(rejects) == 0
    row = manifest.set_index("sample_id").loc["pages:page/e1"]
    assert row["transcription"] == "café noir"
    assert '"entity &eacute;": 1' in row["text_changes"]


def test_an_external_entity_is_never_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    prolog = f'<?xml version="1.0"?><!DOCTYPE PcGts [<!ENTITY x SYSTEM "file://{secret}">]>'
    _page(tmp_path / "pages", "page", _line("e1", text="a&x;b"), prolog=prolog)
    manifest, rejects = _ingest(_pages_config(tmp_path / "pages"))
    assert "SECRET" not in " ".join(manifest["transcription"]) + " ".join(rejects["detail"])
    assert list(rejects["reason"]) == [RejectReason.XML_PARSE_ERROR]
    assert "external entities are never resolved" in rejects["detail"].iloc[0]


def test_an_xml_file_past_the_size_limit_is_rejected_unparsed(tmp_path):
    _good_page(tmp_path)
    path = _page(tmp_path, "huge", _line("h1"))
    path.write_text(
        path.read_text().replace("<TextRegion", "<TextRegion>" + "<a/>" * 300_000 + "</TextRegion><TextRegion")
    )
    manifest, rejects = _ingest(_pages_config(tmp_path, max_xml_bytes=1_000_000))
    assert len(manifest) == 2 and list(rejects["reason"]) == [RejectReason.FILE_TOO_LARGE]
    assert "max_xml_bytes=1,000,000" in rejects["detail"].iloc[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_xml_does_not_hang_ingestion(tmp_path):
    _good_page(tmp_path)
    os.mkfifo(tmp_path / "pipe.xml")
    manifest, rejects = _ingest(_pages_config(tmp_path))
    assert len(manifest) == 2 and list(rejects["reason"]) == [RejectReason.NOT_A_REGULAR_FILE]


# ----------------------------------------------------------------------------------------------- line folder


@pytest.mark.parametrize("key", ["a\x00b.png", "k" * 5000 + ".png"], ids=["nul", "5000 chars"])
def test_a_labels_key_that_no_file_name_can_be_is_a_reject(tmp_path, key):
    rows = _good_rows(tmp_path / "lines")
    (tmp_path / "labels.tsv").write_text(rows + f"{key}\ttexte\n")
    manifest, rejects = _ingest(_lines_config(tmp_path))
    assert len(manifest) == len(GOOD_TEXTS) and len(rejects) == 1
    assert rejects["reason"].iloc[0] == RejectReason.UNREADABLE_FILE
    assert "labels.tsv:7" in rejects["detail"].iloc[0]


def test_a_lone_carriage_return_in_a_label_does_not_cut_it_and_is_counted(tmp_path):
    rows = _good_rows(tmp_path / "lines")
    write_line_png(tmp_path / "lines" / "cr.png")
    (tmp_path / "labels.tsv").write_bytes((rows + "cr.png\tdeux\rmots\r\n").encode())
    manifest, rejects = _ingest(_lines_config(tmp_path))
    assert len(rejects) == 0
    row = manifest.set_index("sample_id").loc["lines:cr"]
    assert row["transcription"] == "deux mots" and '"U+000D": 1' in row["text_changes"]


def test_format_characters_never_reach_the_charset_and_are_counted(tmp_path):
    from htr_pipeline.charset import Charset
    from htr_pipeline.data.report import text_changes_counted

    rows = _good_rows(tmp_path / "lines")
    write_line_png(tmp_path / "lines" / "bidi.png")
    (tmp_path / "labels.tsv").write_text(rows + "bidi.png\t\u200eab\u202ec\u2066d\u2069\u034f\n")
    manifest, _ = _ingest(_lines_config(tmp_path))
    assert manifest.set_index("sample_id").loc["lines:bidi", "transcription"] == "abcd"
    charset = Charset.from_texts(manifest["transcription"])
    assert not {"\u200e", "\u202e", "\u2066", "\u2069", "\u034f"} & set(charset.symbols)
    for symbol in ("\u200e", "\u202e", "\u2066", "\u034f"):
        with pytest.raises(ValueError, match="control or invisible"):
            Charset(symbols=("a", symbol))
    assert text_changes_counted(manifest) == {"U+034F": 1, "U+200E": 1, "U+202E": 1, "U+2066": 1, "U+2069": 1}


def test_a_symlink_loop_does_not_stop_the_run(tmp_path):
    rows = _good_rows(tmp_path / "lines")
    (tmp_path / "lines" / "loop.png").symlink_to(tmp_path / "lines" / "loop.png")
    (tmp_path / "labels.tsv").write_text(rows + "loop.png\tboucle\n")
    manifest, rejects = _ingest(_lines_config(tmp_path))
    assert len(manifest) == len(GOOD_TEXTS) and len(rejects) == 1
    assert "loop.png" in rejects["detail"].iloc[0] or "loop.png" in rejects["path"].iloc[0]


def test_an_invalid_group_pattern_fails_validation_naming_the_key():
    expected = r"data\.sources\[0\]\.group_pattern: .*'\(\?P<g' is not a regular expression"
    with pytest.raises(ConfigError, match=expected):
        validate_parameters({"data": {"sources": [{"kind": "line_folder", "path": ".", "group_pattern": "(?P<g"}]}})


def _wide_tiff(path: Path, mode: str) -> None:
    # values: a line of dark strokes on light paper, in the wide type's own range
    pixels = np.full((32, 120), 0.9 if mode == "F" else 3_000_000, dtype=np.float32 if mode == "F" else np.int32)
    pixels[8:24, 10:110:8] = 0.1 if mode == "F" else 200_000
    Image.fromarray(pixels, mode=mode).save(path)


@pytest.mark.parametrize("mode", ["F", "I"])
def test_a_32_bit_tiff_line_is_converted_with_its_ink(tmp_path, mode):
    rows = _good_rows(tmp_path / "lines")
    _wide_tiff(tmp_path / "lines" / "wide.tif", mode)
    (tmp_path / "labels.tsv").write_text(rows + "wide.tif\tlarge\n")
    config = _lines_config(tmp_path)
    samples, rejects = materialise_all(read_sources(config).candidates, config)
    assert not rejects
    wide = next(sample for sample in samples if sample.manifest_row["sample_id"] == "lines:wide")
    # Ink and paper as the file has them: once all black (F) or all white (I), kept with the text.
    assert wide.manifest_row["transcription"] == "large" and int(np.ptp(wide.clean)) > 150


def test_a_blank_image_is_a_reject(tmp_path):
    rows = _good_rows(tmp_path / "lines")
    Image.new("L", (120, 32), 255).save(tmp_path / "lines" / "white.png")
    Image.new("L", (120, 32), 0).save(tmp_path / "lines" / "black.png")
    (tmp_path / "labels.tsv").write_text(rows + "white.png\tblanc\nblack.png\tnoir\n")
    manifest, rejects = _ingest(_lines_config(tmp_path))
    assert len(manifest) == len(GOOD_TEXTS)
    assert set(rejects["reason"]) == {RejectReason.BLANK_IMAGE}
    assert "one grey level" in rejects["detail"].iloc[0]


# ----------------------------------------------------------------------------------------------------- parquet


def _png_bytes(seed: int) -> bytes:
    import io
    import tempfile

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        Image.open(write_line_png(Path(folder) / "line.png", seed=seed)).save(buffer, "PNG")
    return buffer.getvalue()


def _good_parquet(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": [_png_bytes(i) for i in range(3)], "text": ["un", "deux", "trois"]}), path)


@pytest.mark.parametrize(
    ("image", "text"),
    [
        (None, pa.array([1, 2, 3])),
        (None, pa.array([["a"], ["b"], ["c"]])),
        (pa.array(["not bytes", "neither", "no"]), None),
    ],
    ids=["int text", "list text", "string image"],
)
def test_parquet_columns_of_the_wrong_type_are_rejects(tmp_path, image, text):
    _good_parquet(tmp_path / "good.parquet")
    images = image if image is not None else pa.array([_png_bytes(i) for i in range(3)])
    texts = text if text is not None else pa.array(["a", "b", "c"])
    pq.write_table(pa.table({"image": images, "text": texts}), tmp_path / "bad.parquet")
    manifest, rejects = _ingest(_config({"kind": "parquet_lines", "path": str(tmp_path)}))
    assert len(manifest) == 3 and len(rejects) == 3
    assert set(rejects["reason"]) == {RejectReason.WRONG_TYPE}
    assert rejects["path"].str.startswith(str(tmp_path / "bad.parquet")).all()


@pytest.mark.parametrize("kind", ["text", "folder", "fifo"])
def test_something_named_parquet_that_is_no_parquet_file_is_a_reject(tmp_path, kind):
    _good_parquet(tmp_path / "good.parquet")
    bad = tmp_path / "bad.parquet"
    if kind == "text":
        bad.write_text("image,text\n")
    elif kind == "folder":
        bad.mkdir()
    else:
        os.mkfifo(bad)
    manifest, rejects = _ingest(_config({"kind": "parquet_lines", "path": str(tmp_path)}))
    assert len(manifest) == 3 and len(rejects) == 1
    expected = RejectReason.UNREADABLE_FILE if kind == "text" else RejectReason.NOT_A_REGULAR_FILE
    assert rejects["reason"].iloc[0] == expected and rejects["path"].iloc[0] == str(bad)


# ----------------------------------------------------------------------------------------------- saving


def _store(tmp_path: Path):
    from htr_pipeline.datasets.file_folder import FileFolderDataset

    return FileFolderDataset(filepath=str(tmp_path / "store" / "line_images"))


def test_a_save_that_fails_on_a_name_too_long_leaves_no_partial_folder_and_is_one_line(tmp_path):
    from kedro.io.core import DatasetError

    from htr_pipeline.cli import known_error

    pixels = np.full((8, 8), 200, dtype=np.uint8)
    with pytest.raises(DatasetError) as raised:
        _store(tmp_path).save({"clean/ok.png": pixels, f"clean/{'x' * 300}.png": pixels})
    assert list((tmp_path / "store").iterdir()) == []  # neither .line_images.partial nor line_images
    message = str(known_error(raised.value))
    assert message.startswith("could not write 'clean/xxx") and "File name too long" in message
    assert "nothing of this save was kept" in message and "\n" not in message


def test_a_disk_full_while_saving_is_one_line_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    import errno

    from kedro.io.core import DatasetError

    from htr_pipeline.cli import known_error

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(DatasetError) as raised:
        _store(tmp_path).save({"clean/ok.png": np.full((8, 8), 200, dtype=np.uint8)})
    assert list((tmp_path / "store").iterdir()) == []
    assert "No space left on device; nothing of this save was kept" in str(known_error(raised.value))
    # Any dataset: a DatasetError caused by a full disk is told in one line too.
    wrapped = DatasetError("Failed while saving data to dataset CSVDataset(...)")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert "No space left on device" in str(known_error(wrapped))
    unknown = DatasetError("something else")
    unknown.__cause__ = ValueError("a bug")
    assert known_error(unknown) is None
