"""The source kinds registry, the reader interface (units read one at a time) and where pixels come from."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.config import ConfigError, DataConfig, SourceSettings, validate_parameters
from htr_pipeline.data.images import UnreadableImageError, read_grayscale
from htr_pipeline.data.line_crops import LineCrop, crop_line
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.sources import RejectReason, SampleCandidate, read_sources, registry
from htr_pipeline.data.sources.common import line_sample, sample_id_of
from htr_pipeline.data.sources.pixels import EncodedImage, ImageFile, PageCrop, PageImages, RenderedLine
from htr_pipeline.data.sources.registry import SOURCE_KINDS, SourceKind, register_source_kind
from htr_pipeline.data.sources.synthetic import SyntheticSource, plan_synthetic_lines
from htr_pipeline.data.sources.units import SourceContext, SourceUnit
from tests.conftest import PROJECT_ROOT, small_synthetic_parameters, write_line_png

KINDS = ("synthetic", "line_folder", "paired_folder", "xml_pages", "parquet_lines")


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, SourceKind]:
    """The registry as it is, restored after the test, so kinds a test registers do not outlive it."""
    kinds = dict(SOURCE_KINDS)
    monkeypatch.setattr(registry, "SOURCE_KINDS", kinds)
    return kinds


def test_each_kind_has_its_settings_class_and_reader_in_one_module():
    assert tuple(SOURCE_KINDS) == KINDS
    for name, kind in SOURCE_KINDS.items():
        assert kind.settings.kind_name() == name
        assert kind.settings.__module__ == kind.read.__module__ == f"htr_pipeline.data.sources.{name}"


def test_an_unknown_kind_names_itself_and_the_known_kinds():
    with pytest.raises(ConfigError) as error:
        validate_parameters({"data": {"sources": [{"kind": "pdf_folder", "path": "x"}]}})
    message = str(error.value)
    assert "data.sources[0]: unknown source kind 'pdf_folder'; the known kinds are " in message
    assert all(kind in message for kind in KINDS)


def test_a_source_without_a_kind_is_told_the_kinds():
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]: a source needs a kind: one of line_folder, "):
        validate_parameters({"data": {"sources": [{"path": "x"}]}})


def test_a_misspelt_key_of_a_kind_is_named_with_the_closest_key_of_that_kind():
    parameters = small_synthetic_parameters()
    parameters["data"]["sources"][0]["line_char"] = [4, 10]
    with pytest.raises(ConfigError) as error:
        validate_parameters(parameters)
    assert "data.sources[0].line_char: unknown key. Did you mean 'line_chars'?" in str(error.value)


def test_the_effective_config_logs_every_key_of_the_kind():
    source = validate_parameters(small_synthetic_parameters()).data.model_dump(mode="json")["sources"][0]
    assert list(source)[:3] == ["kind", "name", "lines_per_split"]
    assert source["style"]["slant_degrees"] == [-12.0, 12.0]


class _Unregistered(SourceSettings):
    kind: Literal["unregistered"]
    name: str = "unregistered"


class _FreeKind(SourceSettings):
    kind: str = "free"
    name: str = "free"


class _OddName(SourceSettings):
    kind: Literal["odd"]
    name: str = "something_else"


class _NotSettings:
    pass


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (SourceKind(_NotSettings, lambda s, c: iter(()), unit="line"), "must subclass htr_pipeline.config.SourceSett"),
        (SourceKind(_FreeKind, lambda s, c: iter(()), unit="line"), "_FreeKind.kind must be a Literal of the kind"),
        (SourceKind(_OddName, lambda s, c: iter(()), unit="line"), "_OddName.name must default to the kind, 'odd'"),
        (SourceKind(SyntheticSource, lambda s, c: iter(()), unit="line"), "'synthetic' is registered twice"),
        (SourceKind(_Unregistered, lambda s, c: iter(()), unit="region"), "unit 'region' is not one of"),
    ],
)
def test_a_registry_line_that_breaks_a_rule_is_refused_naming_it(scratch_registry, line, message):
    with pytest.raises((TypeError, ValueError), match=message):
        register_source_kind(line)
    assert tuple(scratch_registry) == KINDS


def test_the_schema_imports_without_torch_or_the_data_layer():
    code = (
        "import sys, htr_pipeline.config\n"
        "print(sorted(name for name in sys.modules if name == 'torch' or name.startswith('htr_pipeline.data')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_kind_names_are_written_only_in_the_sources_package():
    """Outside ``data/sources/`` no code compares with or builds a kind by its name: it asks the registry. A
    parameters literal (``{"kind": "synthetic", ...}``, as a parameters file spells a source) names a kind the way
    a user does, and is validated by the registry like one."""
    package = PROJECT_ROOT / "src" / "htr_pipeline"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.is_relative_to(package / "data" / "sources"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        as_parameters = {
            id(value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Dict)
            for key, value in zip(node.keys, node.values, strict=True)
            if isinstance(key, ast.Constant) and key.value == "kind"
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in SOURCE_KINDS and id(node) not in as_parameters:
                found.append(f"{path.relative_to(package)}:{node.lineno}: {node.value!r}")
    assert found == []


# ------------------------------------------------------------------------------------- the reader interface


class _CountedLinesSource(SourceSettings):
    kind: Literal["counted_lines"]
    name: str = "counted_lines"
    path: Path
    lines: int


EVENTS: list[str] = []


def _read_counted_lines(source: _CountedLinesSource, context: SourceContext) -> Iterator[SourceUnit]:
    for index in [*range(source.lines), 0]:  # the last unit repeats the first sample id
        EVENTS.append(f"listed {index}")
        image = write_line_png(source.path / f"{index}.png", seed=index)

        def read(index: int = index, image: Path = image) -> list[SampleCandidate]:
            EVENTS.append(f"read {index}")
            sample_id = sample_id_of(source.name, str(index))
            return [line_sample(source, sample_id, None, "train", f"line {index}", None, ImageFile(str(image)))]

        yield SourceUnit(str(image), read)


def test_units_are_read_one_at_a_time_in_order_and_ids_stay_unique_for_any_kind(scratch_registry, tmp_path):
    register_source_kind(SourceKind(_CountedLinesSource, _read_counted_lines, unit="line"))
    data = DataConfig.model_validate({"sources": [{"kind": "counted_lines", "path": str(tmp_path), "lines": 3}]})
    EVENTS.clear()
    reading = read_sources(data)
    assert EVENTS == ["listed 0", "read 0", "listed 1", "read 1", "listed 2", "read 2", "listed 0", "read 0"]
    assert [candidate.sample_id for candidate in reading.candidates] == [f"counted_lines:{i}" for i in range(3)]
    (duplicate,) = reading.rejects
    assert (duplicate.reason, duplicate.path) == (RejectReason.DUPLICATE_ID, str(tmp_path / "0.png"))


# ------------------------------------------------------------------------------------- where pixels come from


def _data(**overrides) -> DataConfig:
    synthetic = small_synthetic_parameters()["data"]["sources"][0]
    return DataConfig.model_validate({"sources": [synthetic], "image_height": 32, **overrides})


def test_each_kind_of_pixels_loads_itself(tmp_path):
    data, pages = _data(), PageImages(max_image_pixels=10**8)
    line = write_line_png(tmp_path / "line.png", width=90, height=30, seed=3)
    expected = read_grayscale(line)
    page = np.full((200, 300), 230, dtype=np.uint8)
    page[55:75:3, 20:280] = 20
    Image.fromarray(page).save(tmp_path / "page.png")
    box = ((20.0, 50.0), (280.0, 50.0), (280.0, 80.0), (20.0, 80.0))
    crop = LineCrop(str(tmp_path / "page.png"), box, 0.0, 2, "bbox")
    source = SyntheticSource.model_validate(small_synthetic_parameters()["data"]["sources"][0])
    plan = plan_synthetic_lines(source, seed=7)[0]

    assert np.array_equal(ImageFile(str(line)).load(data, pages).pixels, expected)
    assert np.array_equal(EncodedImage(line.read_bytes(), "lines.parquet#row=0").load(data, pages).pixels, expected)
    assert np.array_equal(PageCrop(crop).load(data, pages).pixels, crop_line(page, crop))
    rendered = RenderedLine(plan, source.style).load(data, pages)
    assert rendered.pixels.shape[0] == 32 and rendered.pixels.dtype == np.uint8
    assert rendered.synthesis["font_file"] and ImageFile(str(line)).load(data, pages).synthesis is None


def test_a_page_is_decoded_once_for_all_its_lines_and_a_bad_page_fails_each_line_alike(tmp_path):
    page_path = tmp_path / "page.png"
    Image.fromarray(np.full((100, 200), 230, dtype=np.uint8)).save(page_path)
    pages = PageImages(max_image_pixels=10**8)
    first = pages.read(str(page_path))
    page_path.unlink()  # a second decode would fail now
    assert pages.read(str(page_path)) is first

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    errors = []
    for _ in range(2):
        with pytest.raises(UnreadableImageError) as error:
            pages.read(str(broken))
        errors.append(str(error.value))
    assert errors[0] == errors[1] and "broken.png" in errors[0]


def test_lines_of_one_page_are_materialised_from_one_decode(tmp_path, monkeypatch):
    page_path = tmp_path / "page.png"
    page = np.full((120, 300), 230, dtype=np.uint8)
    page[20:40:3, 10:290] = 20
    page[70:90:3, 10:290] = 20
    Image.fromarray(page).save(page_path)
    source = validate_parameters(small_synthetic_parameters()).data.sources[0]
    boxes = [(10.0, 18.0, 290.0, 42.0), (10.0, 68.0, 290.0, 92.0)]
    candidates = [
        line_sample(
            source,
            f"page:{index}",
            None,
            "train",
            f"line {index}",
            None,
            PageCrop(LineCrop(str(page_path), ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 0.0, 0, "bbox")),
        )
        for index, (x0, y0, x1, y1) in enumerate(boxes)
    ]
    decoded = []
    monkeypatch.setattr(
        "htr_pipeline.data.sources.pixels.read_grayscale", lambda path, limit: decoded.append(path) or page
    )
    samples, rejects = materialise_all(candidates, _data(num_workers=1))
    assert len(samples) == 2 and rejects == [] and decoded == [page_path]
