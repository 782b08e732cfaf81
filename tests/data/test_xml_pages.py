"""xml_pages: PAGE 2010/2013/2019 and ALTO v2/v3/v4 files built here over real small images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.config import DataConfig
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.page_xml import read_page_layout
from htr_pipeline.data.sources import RejectReason, read_sources

PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_2010 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2010-03-19"
ALTO_V2 = "http://www.loc.gov/standards/alto/ns-v2#"
ALTO_V3 = "http://www.loc.gov/standards/alto/ns-v3#"


def _page_image(path: Path, size=(400, 300), orientation: int | None = None) -> Path:
    """Light paper with a dark stroke band on the rows 40..60 (the first line) of the image as seen."""
    pixels = np.full((size[1], size[0]), 230, dtype=np.uint8)
    pixels[42:58, 20:380:6] = 30
    image = Image.fromarray(pixels)
    if orientation == 6:  # stored turned a quarter counter-clockwise; EXIF 6 turns it back
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(path, exif=exif)
    else:
        image.save(path)
    return path


def _page_xml(namespace: str, lines: str, size=(400, 300), image="page.png", order="") -> str:
    return (
        f'<PcGts xmlns="{namespace}"><Page imageFilename="{image}" imageWidth="{size[0]}" '
        f'imageHeight="{size[1]}">{order}{lines}</Page></PcGts>'
    )


def _page_line(line_id: str, box: tuple[int, int, int, int], text: str | None, custom: str = "", extra="") -> str:
    x0, y0, x1, y1 = box
    coords = f'<Coords points="{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"/>'
    baseline = f'<Baseline points="{x0},{y1 - 4} {x1},{y1 - 4}"/>'
    equiv = f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv>" if text is not None else ""
    return f'<TextLine id="{line_id}" custom="{custom}">{coords}{baseline}{extra}{equiv}</TextLine>'


def _source(tmp_path: Path, **settings) -> DataConfig:
    source = {"kind": "xml_pages", "name": "pages", "path": str(tmp_path), **settings}
    return DataConfig.model_validate({"sources": [source], "max_reject_fraction": 1.0, "image_height": 32})


def test_page_2019_lines_keep_transkribus_reading_order_region_and_words(tmp_path):
    _page_image(tmp_path / "page.png")
    region_a = (
        '<TextRegion id="ra" type="paragraph" custom="readingOrder {index:1;}">'
        + _page_line("l2", (20, 100, 380, 130), "second", "readingOrder {index:1;}")
        + _page_line("l1", (20, 40, 380, 60), "first  line", "readingOrder {index:0;}")
        + "</TextRegion>"
    )
    words = "".join(
        f'<Word id="w{index}"><TextEquiv><Unicode>{word}</Unicode></TextEquiv></Word>'
        for index, word in enumerate(["by", "words"])
    )
    region_b = (
        '<TextRegion id="rb" type="marginalia" custom="readingOrder {index:0;}">'
        + _page_line("m1", (20, 200, 200, 230), None, extra=words)
        + "</TextRegion>"
    )
    (tmp_path / "page.xml").write_text(_page_xml(PAGE_2019, region_a + region_b))
    layout = read_page_layout(tmp_path / "page.xml")
    assert layout.xml_format == "page-2019"
    assert [(line.line_id, line.reading_order, line.region_type) for line in layout.lines] == [
        ("m1", 0, "marginalia"),
        ("l1", 1, "paragraph"),
        ("l2", 2, "paragraph"),
    ]
    assert layout.lines[0].text == "by words"
    reading = read_sources(_source(tmp_path, skip_region_types=["marginalia"]))
    assert [c.transcription for c in reading.candidates] == ["first line", "second"]
    assert [r.reason for r in reading.rejects] == [RejectReason.SKIPPED_REGION_TYPE]
    assert {c.group for c in reading.candidates} == {"pages:page"}
    origin = json.loads(reading.candidates[0].origin)
    assert origin["region_id"] == "ra" and origin["reading_order"] == 1 and origin["frame"] == "declared"


def test_page_2010_reading_order_element_and_every_line_accounted_for(tmp_path):
    _page_image(tmp_path / "page.png")
    order = (
        '<ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="0" regionRef="r2"/>'
        '<RegionRefIndexed index="1" regionRef="r1"/></OrderedGroup></ReadingOrder>'
    )
    lines = (
        '<TextRegion id="r1">'
        + _page_line("a", (20, 40, 380, 60), "kept")
        + _page_line("b", (20, 70, 380, 90), "  ")
        + '<TextLine id="c"><TextEquiv><Unicode>no coords</Unicode></TextEquiv></TextLine>'
        + _page_line("d", (20, 280, 380, 330), "below the page")
        + "</TextRegion>"
        + '<TextRegion id="r2">'
        + '<TextLine id="e"><Coords points="30,40 50,40 50,280 30,280"/><Baseline points="40,280 40,40"/>'
        + "<TextEquiv><Unicode>vertical</Unicode></TextEquiv></TextLine></TextRegion>"
    )
    (tmp_path / "page.xml").write_text(_page_xml(PAGE_2010, lines, order=order))
    reading = read_sources(_source(tmp_path))
    reasons = {r.sample_id.split("/")[-1]: r.reason for r in reading.rejects}
    assert reasons == {
        "e": RejectReason.VERTICAL_LINE,
        "b": RejectReason.EMPTY_TRANSCRIPTION,
        "c": RejectReason.LINE_WITHOUT_COORDS,
        "d": RejectReason.LINE_OUTSIDE_IMAGE,
    }
    assert [c.sample_id for c in reading.candidates] == ["pages:page/a"]
    rotated = read_sources(_source(tmp_path, steep_lines="rotate"))
    assert [c.sample_id for c in rotated.candidates] == ["pages:page/e", "pages:page/a"]  # r2 comes first
    assert json.loads(rotated.candidates[0].origin)["rotation_degrees"] == pytest.approx(-90.0)


def _alto(namespace: str, lines: str, size=(400, 300), image: str | None = "page.png") -> str:
    file_name = f"<fileName>{image}</fileName>" if image else ""
    return (
        f'<alto xmlns="{namespace}"><Description><MeasurementUnit>pixel</MeasurementUnit>'
        f"<sourceImageInformation>{file_name}</sourceImageInformation></Description>"
        '<Tags><OtherTag ID="T1" LABEL="MainZone"/></Tags>'
        f'<Layout><Page WIDTH="{size[0]}" HEIGHT="{size[1]}"><PrintSpace>'
        f'<TextBlock ID="b1" TAGREFS="T1">{lines}</TextBlock></PrintSpace></Page></Layout></alto>'
    )


ALTO_LINE = (
    '<TextLine ID="t1" HPOS="20" VPOS="40" WIDTH="360" HEIGHT="20" BASELINE="56">'
    '<String CONTENT="Ceci"/><SP/><String CONTENT="est"/><String CONTENT="mon"/><HYP CONTENT="-"/></TextLine>'
)


@pytest.mark.parametrize("namespace", [ALTO_V2, ALTO_V3])
def test_alto_box_lines_strings_and_block_tags(tmp_path, namespace):
    _page_image(tmp_path / "page.png")
    (tmp_path / "page.xml").write_text(_alto(namespace, ALTO_LINE))
    layout = read_page_layout(tmp_path / "page.xml")
    line = layout.lines[0]
    assert line.text == "Ceci est mon-" and line.region_type == "MainZone" and line.region_id == "b1"
    assert line.polygon == ((20, 40), (380, 40), (380, 60), (20, 60)) and line.baseline == ((20, 56), (380, 56))


def test_declared_size_other_than_the_image_is_rescaled_and_recorded(tmp_path):
    _page_image(tmp_path / "page.png", size=(400, 300))
    half = '<TextLine ID="t1" HPOS="10" VPOS="20" WIDTH="180" HEIGHT="10"><String CONTENT="half"/></TextLine>'
    (tmp_path / "page.xml").write_text(_alto(ALTO_V3, half, size=(200, 150), image=None))
    config = _source(tmp_path, margin_px=0)
    reading = read_sources(config)
    origin = json.loads(reading.candidates[0].origin)
    assert origin["frame"] == "declared_rescaled" and origin["coordinate_scale"] == [2.0, 2.0]
    (sample,), _ = materialise_all(reading.candidates, config)
    assert (sample.manifest_row["original_width"], sample.manifest_row["original_height"]) == (360, 20)


def test_quarter_turned_page_is_settled_by_its_ink(tmp_path):
    """The XML declares the stored size, its coordinates are in the image as seen: the ink says so."""
    _page_image(tmp_path / "page.jpg", size=(400, 300), orientation=6)  # stored 300 x 400
    line = '<TextLine ID="t1" HPOS="20" VPOS="40" WIDTH="260" HEIGHT="20"><String CONTENT="seen"/></TextLine>'
    (tmp_path / "page.xml").write_text(_alto(ALTO_V3, line, size=(300, 400), image="page.jpg"))
    reading = read_sources(_source(tmp_path))
    assert json.loads(reading.candidates[0].origin)["frame"] == "oriented"


def test_broken_unknown_and_imageless_files_reject_every_line(tmp_path):
    (tmp_path / "broken.xml").write_text("<PcGts><Page>")
    (tmp_path / "other.xml").write_text('<doc xmlns="urn:x"><TextLine/><TextLine/></doc>')
    (tmp_path / "lonely.xml").write_text(_page_xml(PAGE_2019, _page_line("a", (0, 0, 9, 9), "x"), image="gone.png"))
    reading = read_sources(_source(tmp_path))
    reasons = sorted(str(r.reason) for r in reading.rejects)
    assert reasons == ["missing_page_image", "unknown_xml_format", "unknown_xml_format", "xml_parse_error"]
    assert not reading.candidates


def test_polygon_mask_fills_paper_and_crops_are_levelled(tmp_path):
    _page_image(tmp_path / "page.png")
    tilted = (
        '<TextRegion id="r"><TextLine id="t"><Coords points="20,40 380,70 380,90 20,60"/>'
        '<Baseline points="20,56 380,86"/><TextEquiv><Unicode>tilted</Unicode></TextEquiv></TextLine></TextRegion>'
    )
    (tmp_path / "page.xml").write_text(_page_xml(PAGE_2019, tilted))
    config = _source(tmp_path, line_mask="polygon", margin_px=2)
    reading = read_sources(config)
    assert json.loads(reading.candidates[0].origin)["rotation_degrees"] == pytest.approx(4.76, abs=0.01)
    (sample,), _ = materialise_all(reading.candidates, config)
    assert sample.manifest_row["original_height"] < 40  # levelled: about the polygon's 20 px, not its 50 px tilted box
