"""Synthetic lines: corpus windows, font discovery and glyph coverage, planning and rendering, on real fonts."""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from PIL import ImageFont

from htr_pipeline.data.corpus import load_corpus_words, sample_line_text
from htr_pipeline.data.fonts import (
    BUNDLED_FONT_FILES,
    BUNDLED_FONTS_DIRECTORY,
    _find_system_fonts,
    bundled_fonts,
    find_handwriting_fonts,
    pillow_font,
)
from htr_pipeline.data.sources.synthetic import SyntheticSource, plan_synthetic_lines
from htr_pipeline.data.synthetic import HandwritingStyle, SyntheticLinePlan, render_planned_line

STYLE_KEYS = {
    "font_name",
    "font_file",
    "slant_degrees",
    "baseline_wobble",
    "stroke_width_px",
    "letter_spacing",
    "ink_intensity",
    "elastic_distortion",
}


def synthetic_source(train: int = 6, valid: int = 2, test: int = 2, **fields) -> SyntheticSource:
    return SyntheticSource(kind="synthetic", lines_per_split={"train": train, "valid": valid, "test": test}, **fields)


def pillow_plan(text: str = "Hello, world 42!") -> SyntheticLinePlan:
    return SyntheticLinePlan("test-train-000000", "train", text, pillow_font().name, None)


def cmap_characters(font_path: str | None) -> set[str]:
    """The characters a font maps, read straight from the file (independently of the module under test)."""
    font_file = io.BytesIO(ImageFont.load_default(size=16).font_bytes) if font_path is None else font_path
    return {chr(codepoint) for codepoint in TTFont(font_file, lazy=True).getBestCmap()}


@pytest.fixture
def pillow_font_file(tmp_path: Path) -> Path:
    """Pillow's own font written out as a real .ttf file: a font file whose cmap is known exactly."""
    path = tmp_path / "Aileron-copy.ttf"
    path.write_bytes(ImageFont.load_default(size=16).font_bytes)
    return path


# -------------------------------------------------------------------------------------------------- corpus


def test_built_in_corpus_is_multilingual_and_nfc() -> None:
    words = load_corpus_words(None)
    text = " ".join(words)
    assert len(words) > 1000
    assert unicodedata.is_normalized("NFC", text)
    for character in "éèàçüößñãõœ0123456789,.;:'\"()-?!":
        assert character in text, character


def test_user_text_file_is_nfc_normalised(tmp_path: Path) -> None:
    text_file = tmp_path / "text.txt"
    text_file.write_text("e\u0301te\u0301  deux\nmots\tici", encoding="utf-8")
    assert load_corpus_words(text_file) == ["été", "deux", "mots", "ici"]


def test_missing_empty_and_undecodable_text_files_name_path_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"
    with pytest.raises(FileNotFoundError, match=r"absent\.txt.*text_file"):
        load_corpus_words(missing)
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\t", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt.*text_file"):
        load_corpus_words(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("été".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*text_file"):
        load_corpus_words(latin1)


def test_sampled_lines_respect_the_character_range_and_are_deterministic() -> None:
    words = load_corpus_words(None)
    lines = [sample_line_text(words, (8, 40), np.random.default_rng(seed)) for seed in range(500)]
    assert all(8 <= len(line) <= 40 for line in lines)
    assert all(line == line.strip() for line in lines)
    assert len({len(line) for line in lines}) > 20, "line lengths should spread over the range"
    assert lines == [sample_line_text(words, (8, 40), np.random.default_rng(seed)) for seed in range(500)]


def test_sampled_line_is_a_contiguous_window_of_words() -> None:
    words = [f"w{index}" for index in range(100)]
    line = sample_line_text(words, (20, 30), np.random.default_rng(3)).split(" ")
    start = words.index(line[0])
    assert line[:-1] == words[start : start + len(line) - 1]
    assert words[start + len(line) - 1].startswith(line[-1])


def test_a_word_longer_than_max_is_cut_at_max() -> None:
    assert sample_line_text(["abcdefghijklmnop"], (3, 10), np.random.default_rng(0)) == "abcdefghij"


# --------------------------------------------------------------------------------------------------- fonts


def test_bundled_fonts_ship_in_the_package_with_their_licences() -> None:
    fonts = find_handwriting_fonts("bundled")
    assert fonts == bundled_fonts()
    assert sorted(Path(font.path).name for font in fonts) == sorted(BUNDLED_FONT_FILES)
    assert [font.name for font in fonts] == sorted(font.name for font in fonts)
    notice_rows = (BUNDLED_FONTS_DIRECTORY / "README.md").read_text(encoding="utf-8").splitlines()
    for font in fonts:
        assert Path(font.path).parent == BUNDLED_FONTS_DIRECTORY
        assert font.can_draw("Hello world, 1847!"), font.name
        # The fonts' README has a row per file: | `file` | package (version) | licence | `licence file` | ...
        row = next((row for row in notice_rows if row.startswith(f"| `{Path(font.path).name}` |")), None)
        assert row is not None, f"{font.name} is not recorded in the fonts' README"
        licence_file = BUNDLED_FONTS_DIRECTORY / row.split("|")[4].strip().strip("`")
        assert "Open Font License" in licence_file.read_text(encoding="utf-8"), licence_file


def test_the_bundled_fonts_together_draw_every_character_of_the_built_in_corpus() -> None:
    corpus_characters = set("".join(load_corpus_words(None)))
    drawable = set().union(*(cmap_characters(font.path) for font in bundled_fonts()))
    assert corpus_characters <= drawable, corpus_characters - drawable


def test_system_fonts_are_sorted_and_each_draws_plain_ascii() -> None:
    fonts = find_handwriting_fonts("system")
    assert fonts, "the system search never returns nothing: it falls back to the bundled fonts"
    assert [font.name for font in fonts] == sorted(font.name for font in fonts)
    assert all(font.can_draw("Hello world") for font in fonts)


def test_no_installed_font_falls_back_to_the_bundled_fonts(tmp_path: Path) -> None:
    for directories in ([], [tmp_path], [tmp_path / "absent"]):
        assert _find_system_fonts(directories) == bundled_fonts()


def test_pillows_font_is_plain_ascii_aileron() -> None:
    font = pillow_font()
    assert font.path is None
    assert font.can_draw("Plain ASCII, 123 (ok)?")
    assert not font.can_draw("é")
    assert font.load(40).getname()[0] == "Aileron"


def test_a_list_of_font_files_is_used_exactly(pillow_font_file: Path) -> None:
    fonts = find_handwriting_fonts([pillow_font_file])
    assert [font.path for font in fonts] == [str(pillow_font_file)]
    assert fonts[0].codepoints == pillow_font().codepoints
    assert fonts[0].load(32).size == 32


def test_a_missing_font_file_names_path_and_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.ttf.*fonts"):
        find_handwriting_fonts([tmp_path / "nope.ttf"])


def test_spaces_are_always_drawable() -> None:
    font = pillow_font()
    assert font.can_draw("   ")
    assert not font.can_draw("\u2603")


# ------------------------------------------------------------------------------------------------ planning


def test_plans_are_deterministic_per_seed_and_cover_every_split() -> None:
    source = synthetic_source(train=8, valid=3, test=2, name="synth")
    plans = plan_synthetic_lines(source, seed=5)
    assert plans == plan_synthetic_lines(source, seed=5)
    assert [plan.sample_id for plan in plans[:2]] == ["synth-train-000000", "synth-train-000001"]
    assert [plan.split for plan in plans] == ["train"] * 8 + ["valid"] * 3 + ["test"] * 2
    assert [plan.text for plan in plans] != [plan.text for plan in plan_synthetic_lines(source, seed=6)]
    assert all(8 <= len(plan.text) <= 40 for plan in plans)


def test_a_chosen_font_has_a_glyph_for_every_character(tmp_path: Path) -> None:
    text_file = tmp_path / "rare.txt"
    text_file.write_text("cœur sœur œuvre maſs ſoleil aſſez plain words here " * 10, encoding="utf-8")
    plans = plan_synthetic_lines(synthetic_source(train=30, text_file=text_file, line_chars=(4, 12)), seed=1)
    for plan in plans:
        missing = set(plan.text.replace(" ", "")) - cmap_characters(plan.font_path)
        assert not missing, f"{plan.font_name} lacks {missing} for {plan.text!r}"
    assert any("œ" in plan.text for plan in plans), "some bundled fonts have œ, so lines with it are kept"


def test_a_character_no_font_has_is_an_error_naming_it(tmp_path: Path) -> None:
    text_file = tmp_path / "emoji.txt"
    text_file.write_text("\U0001f600\U0001f600 \U0001f600 \U0001f600\U0001f600\U0001f600", encoding="utf-8")
    with pytest.raises(ValueError, match="U\\+1F600"):
        plan_synthetic_lines(synthetic_source(train=1, valid=0, test=0, text_file=text_file), seed=0)


def test_accented_text_with_only_pillows_font_redraws_ascii_lines(tmp_path: Path, pillow_font_file: Path) -> None:
    text_file = tmp_path / "mixed.txt"
    text_file.write_text("déjà vu " + "plain words only here " * 20, encoding="utf-8")
    source = synthetic_source(train=20, text_file=text_file, fonts=[pillow_font_file], line_chars=(5, 15))
    plans = plan_synthetic_lines(source, seed=2)
    assert all(text.isascii() for text in (plan.text for plan in plans))


# ----------------------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("image_height", [16, 64, 128])
def test_rendered_line_has_the_exact_height_white_paper_and_dark_ink(image_height: int) -> None:
    for plan in plan_synthetic_lines(synthetic_source(train=4, valid=0, test=0), seed=0):
        image, style_drawn = render_planned_line(plan, HandwritingStyle(), image_height, seed=0)
        assert image.dtype == np.uint8
        assert image.ndim == 2
        assert image.shape[0] == image_height
        assert image.shape[1] > image_height
        assert np.median(image) > 230, "mostly paper"
        # A thin pen (Breip) at 16 rows is under a pixel wide, so its darkest pixel is lighter than the ink gray.
        assert image.min() < (255 + style_drawn["ink_gray"]) / 2, "some dark ink"
        assert set(style_drawn) >= STYLE_KEYS
        assert style_drawn["font_name"] == plan.font_name
        assert style_drawn["font_file"] in BUNDLED_FONT_FILES, "the default source draws with the bundled fonts"
        json.dumps(style_drawn)


def test_rendering_is_bit_identical_for_the_same_seed_and_differs_for_another() -> None:
    plan = plan_synthetic_lines(synthetic_source(train=1, valid=0, test=0), seed=0)[0]
    first, first_style = render_planned_line(plan, HandwritingStyle(), 64, seed=3)
    second, second_style = render_planned_line(plan, HandwritingStyle(), 64, seed=3)
    assert np.array_equal(first, second)
    assert first_style == second_style
    other, other_style = render_planned_line(plan, HandwritingStyle(), 64, seed=4)
    assert other_style != first_style
    assert other.shape != first.shape or not np.array_equal(other, first)


def test_pillows_font_renders_ink() -> None:
    image, style_drawn = render_planned_line(pillow_plan(), HandwritingStyle(), 48, seed=0)
    assert image.shape[0] == 48
    assert image.min() < 120
    assert style_drawn["font_name"] == pillow_font().name
    assert style_drawn["font_file"] is None


def test_positive_slant_leans_right() -> None:
    upright = {"baseline_wobble": (0.0, 0.0), "elastic_distortion": (0.0, 0.0), "stroke_width": (0.0, 0.0)}
    for slant_degrees, top_is_right in ((30.0, True), (-30.0, False)):
        style = HandwritingStyle(slant_degrees=(slant_degrees, slant_degrees), **upright)
        image, _ = render_planned_line(pillow_plan("l"), style, 64, seed=0)
        ink_rows = np.flatnonzero((image < 128).any(axis=1))
        top_column = np.flatnonzero(image[ink_rows[0] + 2] < 128).mean()
        bottom_column = np.flatnonzero(image[ink_rows[-1] - 2] < 128).mean()
        assert (top_column > bottom_column) == top_is_right


def test_strongest_style_keeps_all_ink_inside_the_image() -> None:
    style = HandwritingStyle(
        slant_degrees=(45.0, 45.0),
        baseline_wobble=(0.5, 0.5),
        stroke_width=(0.2, 0.2),
        letter_spacing=(-0.3, -0.3),
        ink_intensity=(1.0, 1.0),
        elastic_distortion=(0.2, 0.2),
    )
    image, _ = render_planned_line(pillow_plan(), style, 64, seed=1)
    assert image.shape[0] == 64
    for border in (image[0], image[-1], image[:, 0], image[:, -1]):
        assert border.min() == 255
    assert image.min() < 60


def test_ink_intensity_sets_the_ink_gray_level() -> None:
    style = HandwritingStyle(ink_intensity=(0.5, 0.5), stroke_width=(0.1, 0.1))
    image, style_drawn = render_planned_line(pillow_plan("HHHH"), style, 64, seed=0)
    assert style_drawn["ink_gray"] == 128
    assert image.min() >= 127
    assert image.min() <= 135
