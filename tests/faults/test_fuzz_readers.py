"""Property-based tests: each reader fed generated hostile inputs (numbers, strings, file types, sizes, pixel
types, geometry). The invariant, whatever the input: the run finishes with no trace, every input is kept or
rejected with a known reason and a detail, kept text equals the normalised input, kept images hold content, and
decoding stays under its memory bound.

Kept small for the suite's time (about 30 examples each, no deadline); ``HYPOTHESIS_PROFILE=thorough`` runs 500.
"""

from __future__ import annotations

import io
import os
import tempfile
import tracemalloc
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import DataConfig
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.sources import RejectReason, read_sources

settings.register_profile(
    "suite", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
MAX_IMAGE_PIXELS = 200_000
BYTES_PER_PIXEL_BOUND = 6
"""``read_grayscale``'s stated bound (README, memory bounds), with the pixels of the largest accepted image."""

hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "20px", "", " ", "zwanzig", "0x10", "1,5", "+7", "-0"]),
    st.text(max_size=8),
)
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
        st.sampled_from(list("\r\n\t\u00ad\u200b\u200e\u202e\u2066\u2069\u034f\ufeff\x85\u2028")),
    ),
    max_size=40,
)


def _config(source: dict, **overrides) -> DataConfig:
    return DataConfig.model_validate(
        {
            "sources": [source],
            "image_height": 32,
            "max_width": 256,
            "max_label_length": 1000,
            "max_reject_fraction": 1.0,
            "max_image_pixels": MAX_IMAGE_PIXELS,
            **overrides,
        }
    )


def _read(config: DataConfig):
    """Kept samples and rejects; asserts the invariant common to every reader."""
    reading = read_sources(config)
    samples, rejects = materialise_all(reading.candidates, config)
    rejects = [*reading.rejects, *rejects]
    for reject in rejects:
        assert reject.reason in set(RejectReason) and reject.detail.strip()
    for sample in samples:
        clean = sample.clean
        assert clean.dtype == np.uint8 and clean.shape[0] == 32 and int(np.ptp(clean)) > 0
    return samples, rejects


def _line_png(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    image = np.full((32, 100), 235, dtype=np.uint8)
    for x in rng.integers(0, 90, size=5):
        image[8:24, x : x + 3] = 20
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


# ------------------------------------------------------------------------------------------------- page XML


def _xml_char(symbol: str) -> bool:
    """XML 1.0 allows these (tab, newline, carriage return and everything from U+0020 but surrogates, FFFE, FFFF)."""
    return symbol in "\t\n\r" or (symbol >= " " and symbol not in "\ufffe\uffff")


xml_text = hostile_text.map(lambda text: "".join(filter(_xml_char, text)))
coordinate = st.floats(-50, 450, allow_nan=False).map(lambda value: f"{value:.1f}")
points = st.one_of(
    st.lists(st.tuples(coordinate, coordinate), max_size=6),  # plausible numbers, any geometry (0-6 points)
    st.lists(st.tuples(coordinate, coordinate), max_size=6),
    st.lists(st.tuples(hostile_numbers, hostile_numbers), max_size=5),  # anything
).map(lambda pairs: " ".join(f"{x},{y}" for x, y in pairs))
xml_line = st.tuples(
    st.one_of(st.text(alphabet="ab_-.", max_size=12), st.text(min_size=200, max_size=400, alphabet="x/")),
    st.one_of(points, st.just("20,40 380,40 380,60 20,60")),
    xml_text,
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    corrupted=st.sampled_from(["imageWidth", "imageHeight", "index", "lines", "all"]),
    width=hostile_numbers,
    height=hostile_numbers,
    index=hostile_numbers,
    hostile_lines=st.lists(xml_line, min_size=1, max_size=4),
    mask=st.sampled_from(["bbox", "polygon"]),
)
def test_page_xml_with_hostile_numbers_ids_geometry_and_text(corrupted, width, height, index, hostile_lines, mask):
    # One part of a valid page made hostile at a time (or all at once), so every check behind the first is reached.
    every = corrupted == "all"
    width = width if every or corrupted == "imageWidth" else "400"
    height = height if every or corrupted == "imageHeight" else "300"
    index = index if every or corrupted == "index" else "0"
    lines = hostile_lines if every or corrupted == "lines" else [("l1", "20,40 380,40 380,60 20,60", "une ligne")]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pixels = np.full((300, 400), 230, dtype=np.uint8)
        pixels[42:58, 20:380:6] = 30
        Image.fromarray(pixels).save(root / "page.png")
        order = (
            f'<ReadingOrder><OrderedGroup id="o"><RegionRefIndexed index={quoteattr(index)} regionRef="r"/>'
            "</OrderedGroup></ReadingOrder>"
        )
        body = "".join(
            f"<TextLine id={quoteattr(line_id)}><Coords points={quoteattr(coords)}/>"
            f"<TextEquiv><Unicode>{escape(text)}</Unicode></TextEquiv></TextLine>"
            for line_id, coords, text in lines
        )
        (root / "page.xml").write_text(
            f'<PcGts xmlns="{PAGE_2019}"><Page imageFilename="page.png" imageWidth={quoteattr(width)} '
            f'imageHeight={quoteattr(height)}>{order}<TextRegion id="r">{body}</TextRegion></Page></PcGts>',
            encoding="utf-8",
            errors="surrogatepass",
        )
        config = _config({"kind": "xml_pages", "name": "pages", "path": str(root), "line_mask": mask})
        samples, rejects = _read(config)
        texts_of: dict[str, set[str]] = {}
        for line_id, _, text in lines:
            texts_of.setdefault(line_id, set()).add(normalise_text(text))
        for sample in samples:
            line_id = sample.manifest_row["sample_id"].split("/", 1)[1]
            if line_id in texts_of:  # (an id the file repeats is the first of its lines that is kept)
                assert sample.manifest_row["transcription"] in texts_of[line_id]
        assert samples or rejects


# ----------------------------------------------------------------------------------------------- labels.tsv

label_key = st.one_of(
    st.sampled_from(["good.png", "../good.png", "/etc/passwd", "lines/../good.png", ".", "", "a\x00b.png"]),
    st.text(max_size=20).map(lambda name: name + ".png"),
    st.text(min_size=250, max_size=5000, alphabet="kx").map(lambda name: name + ".png"),
).filter(lambda key: "\t" not in key and "\n" not in key and "\r" not in key)


@given(rows=st.lists(st.tuples(label_key, hostile_text.filter(lambda t: "\n" not in t)), max_size=6))
def test_labels_with_hostile_keys_and_texts(rows):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "set"
        _line_png(root / "lines" / "good.png")
        (root / "labels.tsv").write_text("".join(f"{key}\t{text}\n" for key, text in rows), encoding="utf-8")
        samples, rejects = _read(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
        first_text = {}
        for key, text in rows:
            first_text.setdefault(key, text)
        for sample in samples:
            assert sample.manifest_row["transcription"] == normalise_text(first_text["good.png"])
        assert len(samples) <= 1 and len(samples) + len(rejects) >= 1  # good.png is kept or rejected at least


# ----------------------------------------------------------------------------------------------------- images

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"]


@st.composite
def images(draw):
    mode = draw(st.sampled_from(MODES))
    height, width = draw(st.integers(1, 80)), draw(st.integers(1, 400))
    kind = draw(st.sampled_from(["noise", "constant", "strokes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    info = np.iinfo(dtype) if dtype != np.float32 else None
    low, high = (info.min, info.max) if info else (-1e6, 1e6)
    if kind == "constant":
        values = np.full((height, width), draw(st.floats(low, high)) if info is None else draw(st.integers(low, high)))
    elif kind == "noise":
        values = rng.uniform(low, high, size=(height, width))
    else:
        values = np.full((height, width), high * 0.9)
        values[height // 4 : max(height // 4 + 1, 3 * height // 4), :: max(1, width // 10)] = low * 0.9 + high * 0.1
    values = values.astype(dtype)
    if mode in ("RGB", "RGBA", "CMYK"):
        channels = {"RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
        return Image.fromarray(np.repeat(values[..., None], channels, axis=-1), mode=mode)
    if mode == "LA":
        return Image.fromarray(np.stack([values, 255 - values], axis=-1), mode="LA")
    if mode in ("1", "P"):
        return Image.fromarray(values).convert(mode)
    return Image.fromarray(values, mode=mode)


@given(image=images(), suffix=st.sampled_from([".png", ".tif"]))
def test_every_pixel_type_is_converted_or_rejected_within_the_memory_bound(image, suffix):
    if suffix == ".png" and image.mode in ("I", "F", "CMYK"):
        suffix = ".tif"  # PNG cannot hold them
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        image.save(root / f"line{suffix}")
        (root / "labels.tsv").write_text(f"line{suffix}\tun mot\n", encoding="utf-8")
        tracemalloc.start()
        samples, rejects = _read(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(samples) + len(rejects) == 1
        assert peak < BYTES_PER_PIXEL_BOUND * image.width * image.height + 16_000_000
        if rejects:
            assert rejects[0].reason in {
                RejectReason.BLANK_IMAGE,
                RejectReason.IMAGE_TOO_SMALL,
                RejectReason.UNREADABLE_IMAGE,
            }, rejects[0]


# ---------------------------------------------------------------------------------------------------- parquet

cell = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    hostile_text,
    st.binary(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.just("PNG"),
)


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    image = np.full((32, 100), 235, dtype=np.uint8)
    image[8:24, 10:90:9] = 20
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


@given(
    texts=st.lists(st.one_of(hostile_text, st.integers(), st.none()), min_size=1, max_size=4),
    images_as=st.sampled_from(["bytes", "strings", "structs", "mixed"]),
    splits=st.one_of(st.none(), st.lists(cell, min_size=4, max_size=4)),
)
def test_parquet_rows_of_any_type_are_kept_or_rejected(texts, images_as, splits):
    rows = len(texts)
    image_values = {
        "bytes": [_png_bytes()] * rows,
        "strings": ["not an image"] * rows,
        "structs": [{"bytes": _png_bytes(), "path": "x.png"}] * rows,
        "mixed": [_png_bytes() if row % 2 else b"\x89PNG garbage" for row in range(rows)],
    }[images_as]
    columns = {"image": image_values, "text": texts}
    if splits is not None:
        columns["split"] = [str(value) if value is not None else None for value in splits[:rows]]
    try:
        table = pa.table({name: pa.array(values) for name, values in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        table = pa.table({name: pa.array([str(value) for value in values]) for name, values in columns.items()})
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / "lines.parquet")
        source = {"kind": "parquet_lines", "path": folder, "split_column": "split" if splits is not None else None}
        samples, rejects = _read(_config(source))
        assert len(samples) + len(rejects) == rows
        for sample in samples:
            row = int(sample.manifest_row["sample_id"].rsplit("/", 1)[1])
            assert sample.manifest_row["transcription"] == normalise_text(table.column("text")[row].as_py())
