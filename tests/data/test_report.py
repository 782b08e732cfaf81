"""The dataset report's figures: whole-number bins, and a gallery that shows each line degraded with its recipe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from htr_pipeline.data.report import degradation_text, plot_dataset_report, plot_line_gallery, whole_number_bins


def test_whole_number_bins_never_split_a_whole_number():
    edges = whole_number_bins(np.array([3, 4, 4, 9, 17]))
    assert edges[0] == 2.5 and edges[-1] >= 17.5
    assert set(np.diff(edges)) == {1.0}  # 15 values, fewer than 20 bins: one whole number per bin
    wide = whole_number_bins(np.array([1, 1000]), most=20)
    widths = set(np.diff(wide))
    assert len(widths) == 1 and float(widths.pop()).is_integer()
    assert all(float(edge - 0.5).is_integer() for edge in wide)
    assert len(wide) - 1 <= 21


class _Images:
    def read(self, relative_path: str) -> np.ndarray:
        shade = 60 if relative_path.startswith("degraded") else 230
        return np.full((16, 64), shade, dtype=np.uint8)


def _manifest() -> pd.DataFrame:
    recipe = [{"kind": "blur", "strength": 0.4, "sigma_px": 1.234}, {"kind": "stain", "strength": 0.2}]
    return pd.DataFrame(
        {
            "sample_id": ["s:a", "s:b"],
            "source": ["s", "s"],
            "split": ["train", "valid"],
            "image_type": ["line", "line"],
            "synthesis": [None, None],
            "transcription": ["abc", "de fgh"],
            "clean_path": ["clean/a.png", "clean/b.png"],
            "degraded_path": ["degraded/a.png", "degraded/b.png"],
            "degradation_recipe": [json.dumps(recipe), None],
            "width": [64, 64],
        }
    )


def test_gallery_shows_each_line_clean_and_degraded_with_its_recipe():
    figure = plot_line_gallery(_manifest(), _Images())
    titles = [axes.get_title(loc="left") for axes in figure.axes]
    assert titles == [
        "s:a (clean): abc",
        "degraded: blur 0.4, stain 0.2 (kind and strength)",
        "s:b (clean): de fgh",
        "degraded: the source's own degraded image",
    ]
    shown = [axes.get_images()[0].get_array().mean() for axes in figure.axes]
    assert shown == [230, 60, 230, 60]
    assert degradation_text("[]") == "none drawn (the clean line)"


def test_a_recipe_on_real_paper_names_its_page_and_what_was_drawn():
    recipe = [
        {
            "kind": "real_paper",
            "page": "dibco:2009-H01",
            "patch_top_left_px": [3, 4],
            "ink_absorption": 0.7,
            "ink_fading": {"strength": 0.31, "max_fade": 0.26},
            "bleed_through": None,
            "paper_grain": {"strength": 0.8, "crease_depth": 0.2},
        },
        {"kind": "blur", "strength": 0.42, "sigma_px": 1.0},
    ]
    assert degradation_text(json.dumps(recipe)) == (
        "real paper dibco:2009-H01 + ink_fading 0.31 + paper_grain 0.8, blur 0.42 (kind and strength)"
    )


def test_label_length_histogram_has_whole_number_bins():
    manifest = _manifest()
    summary = {"rejects": 0, "character_frequencies_train": {"a": 1}}
    figure = plot_dataset_report(manifest, summary)
    length_axes = figure.axes[2]
    assert length_axes.get_title() == "Label length"
    edges = sorted({patch.get_x() for patch in length_axes.patches})
    assert all(float(edge - 0.5).is_integer() for edge in edges)
