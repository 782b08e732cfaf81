"""Seeded document degradations, applied to real rendered lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from htr_pipeline.config import Degradations, DegradationSetting
from htr_pipeline.data.degradations import DEGRADATION_KINDS, degrade
from htr_pipeline.data.fonts import pillow_font
from htr_pipeline.data.synthetic import HandwritingStyle, SyntheticLinePlan, render_planned_line

NEVER = DegradationSetting(probability=0.0, strength=(0.0, 1.0))


def only(kinds: dict[str, DegradationSetting]) -> Degradations:
    """Settings that apply exactly ``kinds`` (every other kind has probability 0)."""
    return Degradations(**{kind: kinds.get(kind, NEVER) for kind in DEGRADATION_KINDS})


def always(strength: float) -> DegradationSetting:
    return DegradationSetting(probability=1.0, strength=(strength, strength))


def render_clean_line(image_height: int = 64, text: str = "Quick brown fox, 1847!") -> np.ndarray:
    plan = SyntheticLinePlan("degrade-test-000000", "train", text, pillow_font().name, None)
    image, _ = render_planned_line(plan, HandwritingStyle(), image_height, seed=0)
    return image


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return render_clean_line()


def test_kinds_follow_the_config_field_order() -> None:
    assert tuple(Degradations.model_fields) == DEGRADATION_KINDS


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_each_kind_alone_changes_the_image_and_records_itself(clean: np.ndarray, kind: str) -> None:
    degraded, recipe = degrade(clean, only({kind: always(0.5)}), np.random.default_rng(0))
    assert degraded.dtype == np.uint8
    assert degraded.shape == clean.shape
    assert not np.array_equal(degraded, clean)
    assert [step["kind"] for step in recipe] == [kind]
    assert recipe[0]["strength"] == 0.5
    assert len(recipe[0]) > 2, "the drawn physical parameters are recorded"
    assert json.loads(json.dumps(recipe)) == recipe


def test_probability_zero_everywhere_leaves_the_image_untouched(clean: np.ndarray) -> None:
    degraded, recipe = degrade(clean, only({}), np.random.default_rng(0))
    assert np.array_equal(degraded, clean)
    assert recipe == []


def test_probability_one_everywhere_applies_every_kind_in_order(clean: np.ndarray) -> None:
    settings = only({kind: always(0.4) for kind in DEGRADATION_KINDS})
    degraded, recipe = degrade(clean, settings, np.random.default_rng(1))
    assert [step["kind"] for step in recipe] == list(DEGRADATION_KINDS)
    assert degraded.shape == clean.shape
    json.dumps(recipe)


def test_same_rng_state_gives_identical_results_and_another_seed_differs(clean: np.ndarray) -> None:
    first, first_recipe = degrade(clean, Degradations(), np.random.default_rng(7))
    second, second_recipe = degrade(clean, Degradations(), np.random.default_rng(7))
    assert np.array_equal(first, second)
    assert first_recipe == second_recipe
    other, other_recipe = degrade(clean, Degradations(), np.random.default_rng(8))
    assert other_recipe != first_recipe
    assert not np.array_equal(other, first)


def test_switching_one_kind_off_leaves_the_others_draws_unchanged(clean: np.ndarray) -> None:
    every_kind = {kind: DegradationSetting(probability=1.0, strength=(0.2, 0.8)) for kind in DEGRADATION_KINDS}
    _, full_recipe = degrade(clean, only(every_kind), np.random.default_rng(3))
    _, without_stains = degrade(clean, only({**every_kind, "stains": NEVER}), np.random.default_rng(3))
    assert without_stains == [step for step in full_recipe if step["kind"] != "stains"]


def test_strength_is_drawn_within_its_range(clean: np.ndarray) -> None:
    setting = DegradationSetting(probability=1.0, strength=(0.3, 0.6))
    for seed in range(10):
        _, recipe = degrade(clean, only({"blur": setting}), np.random.default_rng(seed))
        assert 0.3 <= recipe[0]["strength"] <= 0.6


@pytest.mark.parametrize("image_height", [16, 64, 128])
def test_output_keeps_dtype_and_shape_at_every_height(image_height: int) -> None:
    line = render_clean_line(image_height)
    settings = only({kind: always(1.0) for kind in DEGRADATION_KINDS})
    degraded, _ = degrade(line, settings, np.random.default_rng(0))
    assert degraded.dtype == np.uint8
    assert degraded.shape == line.shape


@pytest.mark.parametrize("fill", [0, 255])
def test_blank_and_all_ink_images_do_not_break(fill: int) -> None:
    image = np.full((32, 100), fill, dtype=np.uint8)
    settings = only({kind: always(0.7) for kind in DEGRADATION_KINDS})
    degraded, recipe = degrade(image, settings, np.random.default_rng(0))
    assert degraded.shape == image.shape
    assert len(recipe) == len(DEGRADATION_KINDS)


def test_degraded_line_still_shows_the_writing(clean: np.ndarray) -> None:
    degraded, _ = degrade(clean, Degradations(), np.random.default_rng(11))
    ink = clean < 128
    assert degraded[ink].mean() + 40 < degraded[~ink].mean(), "ink stays clearly darker than the paper"


def test_a_colour_image_is_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        degrade(np.zeros((8, 8, 3), dtype=np.uint8), Degradations(), np.random.default_rng(0))
