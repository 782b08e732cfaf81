"""A markdown report as HTML: tables, and images inlined so that kedro-viz and MLflow show them."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from htr_pipeline.datasets.reports import PREVIEW_WIDTH_PX, html_page, report_html


def test_report_html_has_tables_and_inlines_the_images_it_can_open(tmp_path: Path):
    Image.new("RGB", (2000, 500), "white").save(tmp_path / "plots.png")
    text = "# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nin data/06_models/x_y\n\n"
    text += "![plots](plots.png)\n\n![gone](missing.png)\n"
    html = report_html(text, lambda link: io.BytesIO((tmp_path / link).read_bytes()))
    assert "\n" not in html  # kedro-viz turns newlines into breaks
    assert "<table>" in html and "<td>2</td>" in html
    inlined = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert Image.open(io.BytesIO(base64.b64decode(inlined))).size == (PREVIEW_WIDTH_PX, 225)
    assert 'src="missing.png"' in html  # left as the link it was
    assert "data/06_models/x_y" in html  # the text as it is (MLflow's copy)
    from htr_pipeline.datasets.reports import KEDRO_VIZ_UNDERSCORE, without_emphasis_marks

    previewed = without_emphasis_marks(html)  # no underscore for kedro-viz's markdown pass to read as italics
    assert f"data/06{KEDRO_VIZ_UNDERSCORE}models/x{KEDRO_VIZ_UNDERSCORE}y" in previewed
    assert previewed.count('src="data:image/png;base64,') == 1 and "_" not in previewed.split("<img")[0]
    assert html_page(html).startswith("<!DOCTYPE html>") and "img{max-width:100%}" in html_page(html)


def test_a_tall_image_previews_its_top_part_at_a_readable_width():
    from htr_pipeline.datasets.reports import PREVIEW_ASPECT, readable_preview

    gallery = Image.new("RGB", (1760, 6000), "white")
    preview = readable_preview(gallery)
    assert preview.width == PREVIEW_WIDTH_PX
    assert preview.height == int(PREVIEW_WIDTH_PX * PREVIEW_ASPECT) + 24
    plots = Image.new("RGB", (1430, 1045), "white")
    assert readable_preview(plots).size == (PREVIEW_WIDTH_PX, round(1045 * PREVIEW_WIDTH_PX / 1430))
