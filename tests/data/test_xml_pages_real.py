"""xml_pages on the real page sets beside the project (skipped where they are absent), checked against kraken."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import DataConfig
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.page_xml import count_text_lines, read_page_layout
from htr_pipeline.data.sources import read_sources
from htr_pipeline.datasets.file_folder import FileFolderDataset
from tests.conftest import SHARED_DATA, requires_shared_data

PAGE_SETS = {
    # set: (TextLines, lines kept, rejects by reason) with the defaults
    "testaments_alto_pages": (392, 374, {"vertical_line": 18}),
    "hooker_pagexml_pages": (149, 145, {"empty_transcription": 4}),
}
POILUS_PAGE = "TestamentsDePoilus_will_AD78_0005-0"


def _config(name: str) -> DataConfig:
    source = {"kind": "xml_pages", "name": name, "path": str(SHARED_DATA / name)}
    return DataConfig.model_validate({"sources": [source], "max_reject_fraction": 1.0})


@pytest.fixture(scope="module", params=sorted(PAGE_SETS))
def ingested(request):
    name = request.param
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"real data set {SHARED_DATA / name} is absent (it lives beside the project, never inside it)")
    config = _config(name)
    started = time.perf_counter()
    reading = read_sources(config)
    samples, image_rejects = materialise_all(reading.candidates, config)
    seconds = time.perf_counter() - started
    return name, reading, samples, [*reading.rejects, *image_rejects], seconds


@pytest.mark.slow
def test_every_text_line_is_a_sample_or_a_reject(ingested):
    name, _, samples, rejects, seconds = ingested
    xml_files = sorted((SHARED_DATA / name).glob("*.xml"))
    in_xml = sum(count_text_lines(path) for path in xml_files)
    expected_lines, expected_kept, expected_reasons = PAGE_SETS[name]
    assert in_xml == expected_lines == len(samples) + len(rejects)
    assert len(samples) == expected_kept
    assert dict(Counter(str(reject.reason) for reject in rejects)) == expected_reasons
    pages_per_second = len(xml_files) / seconds
    print(f"{name}: {len(samples)} kept, {len(rejects)} rejected, {pages_per_second:.1f} pages/s in one process")
    assert pages_per_second > 2  # about 7 to 10 on an idle core, decoding and degradation included


@pytest.mark.slow
def test_saved_crops_carry_no_icc_profile_or_metadata(ingested, tmp_path):
    name, _, samples, _, _ = ingested
    dataset = FileFolderDataset(str(tmp_path / "line_images"))
    row = samples[0].manifest_row
    dataset.save({row["clean_path"]: samples[0].clean})
    with Image.open(tmp_path / "line_images" / row["clean_path"]) as saved:
        assert "icc_profile" not in saved.info and "exif" not in saved.info and saved.mode == "L"
    if name == "hooker_pagexml_pages":
        with Image.open(json.loads(row["origin"])["image"]) as page:
            assert len(page.info["icc_profile"]) > 600_000  # what a naive crop-and-save would copy


@requires_shared_data("testaments_alto_pages")
@requires_shared_data("testaments_poilus_fr")
def test_the_quarter_turned_testament_page_is_read_as_seen():
    """Its ALTO declares the stored 1416 x 1832 px, but its line sits on the image as seen, scaled to that box."""
    config = _config("testaments_alto_pages")
    reading = read_sources(config)
    (candidate,) = [c for c in reading.candidates if POILUS_PAGE in c.sample_id]
    origin = json.loads(candidate.origin)
    assert origin["frame"] == "oriented_fit" and origin["coordinate_scale"] == pytest.approx([1.2938, 1.2938], 1e-3)
    (sample,), _ = materialise_all([candidate], config)
    labels = (SHARED_DATA / "testaments_poilus_fr" / "labels.tsv").read_text(encoding="utf-8")
    line_file = next(line.split("\t")[0] for line in labels.splitlines() if line.startswith(POILUS_PAGE))
    assert candidate.transcription == "Ceci est mon Testament"
    # The published crop of this line is the naive one (stored pixels): ours differs from it; ink is along the
    # middle rows of ours (a horizontal line of writing), while the naive crop's ink crosses it top to bottom.
    crop = sample.clean.astype(np.float64)
    with Image.open(SHARED_DATA / "testaments_poilus_fr" / "lines" / line_file) as published:
        naive = np.asarray(published.convert("L"), dtype=np.float64)
    assert _middle_ink_share(crop) > 1.5 * _middle_ink_share(naive)


def _middle_ink_share(image: np.ndarray) -> float:
    ink = image < 0.7 * np.median(image)
    rows = ink.mean(axis=1)
    third = len(rows) // 3
    return float(rows[third : 2 * third].sum() / max(rows.sum(), 1e-9))


@pytest.mark.parametrize("name", sorted(PAGE_SETS))
def test_lines_agree_with_kraken(name):
    xml = pytest.importorskip(
        "kraken.lib.xml",
        reason="kraken is not installed: the README test command installs it (pip install --no-deps kraken==7.1.1)",
    )
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"real data set {SHARED_DATA / name} is absent (it lives beside the project, never inside it)")
    for path in sorted((SHARED_DATA / name).glob("*.xml")):
        ours = {line.line_id: line for line in read_page_layout(path).lines}
        theirs = xml.XMLPage(path).lines
        assert sorted(ours) == sorted(theirs), path.name
        for line_id, line in theirs.items():
            assert normalise_text(ours[line_id].text) == normalise_text(line.text or ""), (path.name, line_id)
            assert _box(ours[line_id].polygon) == _box(line.boundary), (path.name, line_id)


def _box(points) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)
