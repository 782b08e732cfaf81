"""``synthetic``: handwriting-like lines rendered offline from a text corpus in handwriting fonts.

Reading plans every line (its split, text and font) in a fixed order; one unit per planned line. The pixels are
rendered when samples are materialised (:mod:`htr_pipeline.data.synthetic`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import SPLIT_NAMES, SourceSettings, StrictModel
from htr_pipeline.data.corpus import load_corpus_words, sample_line_text
from htr_pipeline.data.fonts import HandwritingFont, find_handwriting_fonts, pillow_font
from htr_pipeline.data.seeding import rng_for
from htr_pipeline.data.sources.pixels import RenderedLine
from htr_pipeline.data.sources.samples import SampleCandidate
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit
from htr_pipeline.data.synthetic import HandwritingStyle, SyntheticLinePlan

TEXT_ATTEMPTS = 20
"""Lines drawn for a sample before giving up when no font has a glyph for every character."""


class SplitCounts(StrictModel):
    """How many lines a synthetic source makes for each split."""

    train: int = Field(ge=0)
    valid: int = Field(ge=0)
    test: int = Field(ge=0)


class SyntheticSource(SourceSettings):
    """Handwriting-like lines rendered offline from a text corpus."""

    kind: Literal["synthetic"]
    name: str = "synthetic"
    lines_per_split: SplitCounts
    text_file: Path | None = None
    """UTF-8 text to take lines from; ``null`` uses the built-in multilingual corpus."""
    line_chars: tuple[int, int] = (8, 40)
    """[min, max] characters per line."""
    fonts: Literal["bundled", "system"] | list[Path] = "bundled"
    """``bundled``: the handwriting fonts shipped with the package, so the data is the same on every machine;
    ``system``: the handwriting fonts installed on this machine (the bundled ones when there are none); or a
    list of .ttf/.otf files."""
    style: HandwritingStyle = HandwritingStyle()

    @model_validator(mode="after")
    def _line_chars_ordered(self) -> SyntheticSource:
        low, high = self.line_chars
        if not 1 <= low <= high:
            raise ValueError(f"line_chars must be [min, max] with 1 <= min <= max, got [{low}, {high}]")
        return self


assert set(SplitCounts.model_fields) == set(SPLIT_NAMES)


def read_synthetic(source: SyntheticSource, context: SourceContext) -> Iterator[SourceUnit]:
    """One unit per planned line, split by split."""
    for plan in plan_synthetic_lines(source, context.seed):
        yield SourceUnit(plan.sample_id, partial(_planned_sample, source, plan))


def _planned_sample(source: SyntheticSource, plan: SyntheticLinePlan) -> list[Outcome]:
    candidate = SampleCandidate(
        sample_id=plan.sample_id,
        source=source.name,
        source_kind=source.kind,
        image_type="line",
        group=None,
        split=plan.split,
        transcription=normalise_text(plan.text),
        clean_pixels=RenderedLine(plan, source.style),
    )
    return [candidate]


def plan_synthetic_lines(source: SyntheticSource, seed: int) -> list[SyntheticLinePlan]:
    """The text and font of every line of ``source``, split by split, in a fixed order."""
    words = load_corpus_words(source.text_file)
    handwriting_fonts = find_handwriting_fonts(source.fonts)
    fallback_font = pillow_font()
    plans = []
    for split in SPLIT_NAMES:
        for index in range(getattr(source.lines_per_split, split)):
            sample_id = f"{source.name}-{split}-{index:06d}"
            text, font = _drawable_text_and_font(
                words, source.line_chars, sample_id, seed, handwriting_fonts, fallback_font
            )
            plans.append(SyntheticLinePlan(sample_id, split, text, font.name, font.path))
    return plans


def _drawable_text_and_font(
    words: list[str],
    line_chars: tuple[int, int],
    sample_id: str,
    seed: int,
    handwriting_fonts: list[HandwritingFont],
    fallback_font: HandwritingFont,
) -> tuple[str, HandwritingFont]:
    """A line of text and a font that has a glyph for each of its characters, so no glyph is ever a box."""
    undrawable_characters: set[str] = set()
    for attempt in range(TEXT_ATTEMPTS):
        attempt_id = sample_id if attempt == 0 else f"{sample_id}#{attempt}"
        text = sample_line_text(words, line_chars, rng_for(seed, attempt_id, "text"))
        candidates = [font for font in handwriting_fonts if font.can_draw(text)]
        if not candidates and fallback_font.can_draw(text):
            candidates = [fallback_font]
        if candidates:
            font_rng = rng_for(seed, sample_id, "font")
            return text, candidates[int(font_rng.integers(len(candidates)))]
        undrawable_characters |= {
            character
            for character in text
            if not any(font.can_draw(character) for font in [*handwriting_fonts, fallback_font])
        }
    names = ", ".join(f"{character!r} (U+{ord(character):04X})" for character in sorted(undrawable_characters))
    raise ValueError(
        f"sample {sample_id}: none of {TEXT_ATTEMPTS} lines drawn from the text could be drawn by one font; "
        f"no font has the characters {names or 'in each line together'}. Remove them from "
        "`data.sources[...].text_file` or add fonts that have them to `data.sources[...].fonts`."
    )
