"""The held-out test on real degradation: page pairs scored with the DIBCO metrics, lines read raw and restored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from htr_pipeline.config import RealTestConfig
from htr_pipeline.data.images import read_grayscale
from htr_pipeline.evaluation.real_scans import (
    RealTestInputError,
    real_lines,
    real_page_pairs,
    run_real_test,
)
from tests.conftest import SHARED_DATA, requires_shared_data, write_line_png
from tests.data.test_paper import generated_page
from tests.data.test_real_paper import write_page_pairs


def write_line_set(folder: Path, splits: dict[str, str]) -> Path:
    """``lines/*.png`` + ``labels.tsv`` + ``splits.tsv``, as the Testaments de Poilus set ships."""
    labels, split_rows = [], []
    for index, (name, split) in enumerate(splits.items()):
        write_line_png(folder / "lines" / f"{name}.png", width=160, height=40, seed=index)
        labels.append(f"{name}.png\tline {index} text")
        split_rows.append(f"{name}.png\t{split}")
    (folder / "labels.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (folder / "splits.tsv").write_text("\n".join(split_rows) + "\n", encoding="utf-8")
    return folder


def real_test_config(tmp_path: Path, **overrides) -> RealTestConfig:
    pairs = write_page_pairs(tmp_path / "pages", ["a-1", "a-2", "b-1"])
    lines = write_line_set(tmp_path / "lines", {"l1": "test", "l2": "test", "l3": "train", "l4": "test"})
    settings = {"page_pairs": {"path": pairs, "include": "^a-"}, "lines": {"path": lines}, "pictures": 2}
    return RealTestConfig.model_validate({**settings, **overrides})


def test_restoration_that_changes_nothing_gains_nothing(tmp_path: Path) -> None:
    config = real_test_config(tmp_path)
    readers = {"judge": lambda line: "line text", "in_loop": lambda line: ""}
    result = run_real_test(config, lambda page: page, lambda line: line, readers, 32, 256, resamples=200, seed=0)

    assert sorted(result.pages["page"]) == ["a-1", "a-2"], "include keeps the pages it names"
    for metric in ("f_measure", "pseudo_f_measure", "psnr_db", "drd"):
        figures = result.summary["pages"][metric]
        assert figures["degraded"] == figures["restored"]
        assert figures["gain"] == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    lines = result.summary["lines"]
    assert lines["lines"] == 3 and lines["split"] == "test", "the train line is left out"
    assert lines["headline_recognizer"] == "judge"
    assert lines["judge"]["cer_reduction"] == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert lines["in_loop"]["cer_corpus_raw"] == lines["in_loop"]["cer_corpus_restored"] == 1.0
    assert set(result.restored_pages) == {"a-1.png", "a-2.png"}
    assert len(result.pictures.axes) == 2 * 2 + 2 * 2, "two pages and two lines, input beside restored"


def test_every_title_of_the_pictures_lies_inside_them_for_a_narrow_line_with_a_long_name(tmp_path: Path) -> None:
    """A vertical marginal note cut as a line (narrow and tall) under a long file name, as the Testaments set has."""
    name = "TestamentsDePoilus_will_AD78_0064-4_eSc_line_96fea2cf"
    folder = tmp_path / "lines"
    write_line_png(folder / "lines" / f"{name}.png", width=24, height=180, seed=3)
    write_line_png(folder / "lines" / "wide.png", width=400, height=40, seed=4)
    (folder / "labels.tsv").write_text(f"{name}.png\tJ.Adain\nwide.png\tline text\n", encoding="utf-8")
    (folder / "splits.tsv").write_text(f"{name}.png\ttest\nwide.png\ttest\n", encoding="utf-8")
    config = RealTestConfig.model_validate({"lines": {"path": folder}, "pictures": 2})
    readers = {"judge": lambda line: "read", "in_loop": lambda line: ""}
    result = run_real_test(config, lambda page: page, lambda line: line, readers, 32, 256, resamples=200, seed=0)
    figure = result.pictures
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    titles = [text for text in figure.findobj(Text) if text.get_text().startswith(name)]
    assert len(titles) == 2, "the narrow line, raw and restored"
    for text in titles:
        extent = text.get_window_extent(renderer)
        assert extent.x0 >= 0 and extent.x1 <= width and extent.y0 >= 0 and extent.y1 <= height, text.get_text()


def test_restoration_that_cleans_pages_and_lines_shows_its_gain(tmp_path: Path) -> None:
    config = real_test_config(tmp_path)
    pairs = real_page_pairs(config)
    clean_by_scan = {read_grayscale(pair.scan_path).tobytes(): read_grayscale(pair.ground_truth_path) for pair in pairs}

    def restore_page(page: np.ndarray) -> np.ndarray:
        return clean_by_scan[page.tobytes()]  # an oracle: the ground truth itself

    def restore_line(line: np.ndarray) -> np.ndarray:
        return np.where(line < 128, 0, 255).astype(np.uint8)

    def read(line: np.ndarray) -> str:
        # Reads a line right only once it is restored (pure black and white), and nothing of the raw line.
        return "line 0 text" if set(np.unique(line)) <= {0, 255} else ""

    result = run_real_test(config, restore_page, restore_line, {"judge": read}, 32, 256, resamples=200, seed=0)
    pages = result.summary["pages"]
    assert pages["f_measure"]["restored"] == 100.0 and pages["f_measure"]["gain"]["ci_low"] > 0
    assert pages["drd"]["restored"] == 0.0 and pages["drd"]["pages_worse"] == []
    judge = result.summary["lines"]["judge"]
    assert judge["cer_corpus_raw"] == 1.0 and judge["cer_corpus_restored"] < 0.2
    assert judge["cer_reduction"]["ci_low"] > 0.5 and judge["lines_read_better"] == 3
    table = result.lines
    assert set(table.columns) >= {"reading_raw", "reading_restored", "char_edits_raw", "char_edits_restored"}


def test_missing_or_empty_material_names_the_key(tmp_path: Path) -> None:
    config = real_test_config(tmp_path)
    with pytest.raises(RealTestInputError, match=r"evaluation\.real_test\.page_pairs: no scan .* matches include"):
        real_page_pairs(config.model_copy(update={"page_pairs": config.page_pairs.model_copy(update={"include": "z"})}))
    (tmp_path / "pages" / "gt" / "a-2_gt.png").unlink()
    with pytest.raises(RealTestInputError, match=r"1 scan\(s\) .* have no ground truth in gt/ \(a-2\.png\)"):
        real_page_pairs(config)
    with pytest.raises(RealTestInputError, match=r"evaluation\.real_test\.lines\.path: folder .*nowhere"):
        real_lines(config.model_copy(update={"lines": config.lines.model_copy(update={"path": tmp_path / "nowhere"})}))
    with pytest.raises(RealTestInputError, match="no line of split 'valid'"):
        real_lines(config.model_copy(update={"lines": config.lines.model_copy(update={"split": "valid"})}))
    with pytest.raises(ValueError, match="give page_pairs, lines or both"):
        RealTestConfig.model_validate({})


def test_a_ground_truth_of_another_size_is_an_error_naming_it(tmp_path: Path) -> None:
    config = real_test_config(tmp_path)
    scan, _, _ = generated_page(seed=9, shape=(50, 60))
    Image.fromarray(scan).save(tmp_path / "pages" / "gt" / "a-1_gt.png")
    with pytest.raises(RealTestInputError, match=r"a-1_gt\.png is 60 x 50 px but its scan 200 x 120 px"):
        run_real_test(config, lambda page: page, lambda line: line, {}, 32, 256, resamples=100, seed=0)


@requires_shared_data("dibco_2009_2011")
@requires_shared_data("testaments_poilus_fr")
def test_the_real_sets_of_the_experiment_are_read_whole() -> None:
    config = RealTestConfig.model_validate(
        {
            "page_pairs": {"path": SHARED_DATA / "dibco_2009_2011", "include": "^2011-"},
            "lines": {"path": SHARED_DATA / "testaments_poilus_fr", "split": "test"},
        }
    )
    pairs = real_page_pairs(config)
    assert len(pairs) == 16 and all(pair.page.startswith("2011-") for pair in pairs)
    lines, rejected = real_lines(config)
    assert len(lines) == 260 and rejected == 0
    assert all(line.transcription for line in lines)
