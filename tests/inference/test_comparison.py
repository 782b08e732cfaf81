"""Comparison images say which side is the input and which is restored."""

import numpy as np

from htr_pipeline.inference.restoration import CAPTION_STRIP_PX, COMPARISON_GAP_PX, comparison_image


def test_each_panel_is_under_its_caption_for_lines_and_pages():
    line = np.full((32, 200), 200, dtype=np.uint8)
    stacked = comparison_image([line, line], "line", max_width=400)
    assert stacked.shape == (2 * (32 + CAPTION_STRIP_PX) + COMPARISON_GAP_PX, 200)
    first_caption, second_caption = (
        stacked[:CAPTION_STRIP_PX],
        stacked[32 + CAPTION_STRIP_PX + COMPARISON_GAP_PX :][:CAPTION_STRIP_PX],
    )
    assert (first_caption < 100).any() and (second_caption < 100).any()  # text drawn on each white strip
    assert not np.array_equal(first_caption, second_caption)  # "input" and "restored" differ

    page = np.full((600, 400), 200, dtype=np.uint8)
    side_by_side = comparison_image([page, page, page], "page", max_width=600)
    assert side_by_side.shape[1] <= 600 + 2 * COMPARISON_GAP_PX
    assert (side_by_side[:CAPTION_STRIP_PX] < 100).sum() > 30  # captions stay readable after scaling down
