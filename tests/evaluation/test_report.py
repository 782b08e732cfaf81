"""Figures and markdown report, from a table scored with real tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.config import RecognizerConfig, UnetGeneratorConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.evaluation.aggregates import summarise
from htr_pipeline.evaluation.report import (
    GALLERY_FILE,
    PLOTS_FILE,
    changed_lines,
    failure_gallery,
    markdown_report,
    plot_evaluation,
)
from htr_pipeline.evaluation.scoring import restore_lines, score_samples
from htr_pipeline.models.registry import build_generator, build_recognizer

CPU = torch.device("cpu")
TEXTS = ["abc de", "fgh", "a | b", "de fgh a", "cab"]
WIDTHS = [40, 24, 32, 48, 16]


def line_batch(texts: list[str]) -> LineBatch:
    rng = np.random.default_rng(0)
    clean = torch.ones(len(texts), 1, 16, 48)
    for index, width in enumerate(WIDTHS[: len(texts)]):
        clean[index, 0, :, :width] = torch.from_numpy(rng.uniform(0.05, 0.95, size=(16, width))).float()
    degraded = (clean + torch.from_numpy(rng.uniform(-0.04, 0.04, size=clean.shape)).float()).clamp(0.0, 1.0)
    return LineBatch(
        sample_ids=[f"line_{index}" for index in range(len(texts))],
        degraded=degraded,
        clean=clean,
        widths=torch.tensor(WIDTHS[: len(texts)], dtype=torch.int64),
        labels=torch.zeros(len(texts), 1, dtype=torch.int64),
        label_lengths=torch.zeros(len(texts), dtype=torch.int64),
        texts=texts,
    )


@pytest.fixture
def models() -> tuple[torch.nn.Module, torch.nn.Module, Charset]:
    torch.manual_seed(0)
    charset = Charset.from_texts(TEXTS)
    config = RecognizerConfig(conv_channels=[8, 16], width_downsampling=4, lstm_hidden=16, lstm_layers=1)
    recognizer = build_recognizer(config, charset.num_classes)
    generator = build_generator(UnetGeneratorConfig(variant="unet", channels=[8, 16]))
    return generator, recognizer, charset


@pytest.fixture
def batch() -> LineBatch:
    return line_batch(TEXTS)


@pytest.fixture
def samples(models, batch) -> pd.DataFrame:
    generator, recognizer, charset = models
    return score_samples([batch], generator, recognizer, charset, CPU)


def save_png(figure, path: Path) -> np.ndarray:
    """Save the figure and read the file back: a PNG of the figure's size in pixels that is not blank. Returns
    its pixels, grey, 0 = black."""
    figure.savefig(path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width_in, height_in = figure.get_size_inches()
        assert image.size == (round(width_in * figure.dpi), round(height_in * figure.dpi))
        pixels = np.asarray(image.convert("L"))
    assert drawn_share(pixels) > 0.005, f"{path.name} is blank"
    return pixels


def drawn_share(pixels: np.ndarray) -> float:
    """The share of pixels that are not the white background."""
    return float((pixels < 250).mean())


def test_evaluation_plots_show_four_panels_each_with_its_data(samples, tmp_path: Path):
    figure = plot_evaluation(samples)
    pixels = save_png(figure, tmp_path / PLOTS_FILE)
    cer_axes, psnr_axes, length_axes, figures_axes = figure.axes
    assert [axes.get_title() for axes in figure.axes] == [
        "Per-line CER: degraded vs restored",
        "Per-line PSNR gain (restored - degraded)",
        "CER against reference length",
        "Corpus figures",
    ]
    lines = len(samples)
    assert sum(bar.get_height() for bar in cer_axes.patches) == 2 * lines  # degraded and restored, each line
    assert sum(bar.get_height() for bar in psnr_axes.patches) == lines
    assert len(length_axes.collections) >= 2
    assert all(len(points.get_offsets()) == lines for points in length_axes.collections)
    assert figures_axes.texts, "the corpus figures are written in the fourth panel"
    # Two by two: every quarter of the picture holds a drawn panel.
    quarters = [quarter for half in np.array_split(pixels, 2, axis=0) for quarter in np.array_split(half, 2, axis=1)]
    assert all(drawn_share(quarter) > 0.02 for quarter in quarters), [drawn_share(quarter) for quarter in quarters]


def test_evaluation_plots_render_for_recognizer_only_and_textless_tables(models, batch, tmp_path: Path):
    _, recognizer, charset = models
    recognizer_only = score_samples([batch], None, recognizer, charset, CPU)
    save_png(plot_evaluation(recognizer_only), tmp_path / "recognizer_only.png")
    generator, _, _ = models
    textless = score_samples([line_batch([""] * 3)], generator, recognizer, charset, CPU)
    figure = plot_evaluation(textless)
    save_png(figure, tmp_path / "textless.png")
    panel_texts = [text.get_text() for axes in figure.axes for text in axes.texts]
    assert panel_texts.count("no text: no CER") == 2


def test_gallery_lines_are_what_restoration_breaks_and_fixes_not_what_nobody_reads(samples):
    ranked = samples.copy()
    # line_0: unreadable even clean (CER 1 everywhere): the old ranking's first line, no change here.
    ranked["cer_degraded"] = [1.0, 0.6, 0.1, 0.9, 0.5]
    ranked["cer_restored"] = [1.0, 0.7, 0.6, 0.2, 0.4]
    ranked["cer_clean"] = [1.0, 0.0, 0.1, 0.1, 0.4]
    changed = changed_lines(ranked, 4)
    assert changed["sample_id"].tolist() == ["line_1", "line_2", "line_3", "line_4"]
    assert changed["gallery"].tolist() == ["breaks", "breaks", "fixes", "fixes"]
    assert changed["cer_change"].tolist() == pytest.approx([0.7, 0.5, 0.7, 0.1])
    # Too few breaks: the fixes take their places (and a line is never shown twice).
    assert changed_lines(ranked, 5)["sample_id"].tolist() == ["line_1", "line_2", "line_3", "line_4"]
    assert changed_lines(ranked, 1)["sample_id"].tolist() == ["line_1"]


def test_gallery_lines_skip_lines_without_text_and_show_what_degradation_breaks_without_generator(models):
    _, recognizer, charset = models
    recognizer_only = score_samples([line_batch(["abc de", "", "fgh"])], None, recognizer, charset, CPU)
    recognizer_only["cer_degraded"] = [0.5, np.nan, 0.9]
    recognizer_only["cer_clean"] = [0.2, np.nan, 0.7]
    changed = changed_lines(recognizer_only, 5)
    assert changed["sample_id"].tolist() == ["line_0", "line_2"]
    assert set(changed["gallery"]) == {"breaks"}


def test_failure_gallery_renders_each_line_with_its_readings(models, batch, samples, tmp_path: Path):
    generator, _, _ = models
    worst = changed_lines(samples.assign(cer_clean=0.0, cer_restored=0.5), 3)
    restored = restore_lines(batch, generator, CPU)
    images = []
    for index in worst.index:
        width = int(batch.widths[index])
        images.append(
            (batch.degraded[index, 0, :, :width].numpy(), restored[index], batch.clean[index, 0, :, :width].numpy())
        )
    figure = failure_gallery(worst, images, "run.pt (epoch 3); split 'test', read by judge")
    save_png(figure, tmp_path / GALLERY_FILE)
    captions = " ".join(text.get_text() for axes in figure.axes for text in axes.texts)
    assert all(reference in captions for reference in worst["reference"])
    assert "(restoration breaks it: restored CER 0.500 above clean)" in captions
    assert "split 'test', read by judge" in figure.get_suptitle()


def test_failure_gallery_truncates_long_readings_and_handles_no_lines(samples, tmp_path: Path):
    row = samples.iloc[:1].copy()
    row["reading_degraded"] = "x" * 500
    image = np.ones((16, 40))
    figure = failure_gallery(row, [(image, None, image)])
    save_png(figure, tmp_path / "long.png")
    assert "x" * 500 not in " ".join(text.get_text() for axes in figure.axes for text in axes.texts)
    save_png(failure_gallery(samples.iloc[:0], []), tmp_path / "empty.png")
    with pytest.raises(ValueError, match="image triples"):
        failure_gallery(samples.iloc[:2], [])


def by_recognizer(**tables) -> dict:
    """An evaluation summary as evaluate_split builds it: one summary per recognizer, the judge's the headline."""
    summaries = {name: summarise(table, resamples=100, seed=0) for name, table in tables.items()}
    headline = "judge" if "judge" in summaries else "in_loop"
    return {"headline_recognizer": headline, "recognizers": list(summaries), **summaries}


def test_markdown_report_holds_the_key_numbers(samples):
    # A judge that reads nothing on the restored lines: other figures than the in-loop table's.
    judge_samples = samples.assign(reading_restored="", cer_restored=1.0, wer_restored=1.0)
    judge_samples["char_edits_restored"] = judge_samples["char_reference_length"].astype("Int64")
    judge_samples["word_edits_restored"] = judge_samples["word_reference_length"].astype("Int64")
    report_summary = by_recognizer(in_loop=samples, judge=judge_samples)
    report = markdown_report(report_summary, samples, "generator epoch 7 (best val/cer)")
    assert "generator epoch 7 (best val/cer)" in report
    assert "read by **judge**" in report and "no GAN loss ever saw it" in report
    in_loop_section = report.split("## Readability by `in_loop`")[1].split("## Readability by `judge`")[0]
    judge_section = report.split("## Readability by `judge`")[1].split("## Image fidelity")[0]
    for section, summary in ((in_loop_section, report_summary["in_loop"]), (judge_section, report_summary["judge"])):
        for variant in ("degraded", "restored", "clean"):
            assert f"{summary[f'cer_corpus_{variant}']:.4f}" in section
            assert f"{summary[f'cer_mean_per_line_{variant}']:.4f}" in section
        reduction = summary["cer_reduction"]
        assert f"{reduction['estimate']:.4f} [{reduction['ci_low']:.4f}, {reduction['ci_high']:.4f}]" in section
    assert report_summary["judge"]["cer_corpus_restored"] == 1.0
    assert report_summary["judge"]["cer_reduction"] != report_summary["in_loop"]["cer_reduction"]
    summary = report_summary["judge"]
    assert f"{summary['psnr_db_mean_degraded']:.2f}" in report
    gain = summary["psnr_gain_db"]
    assert f"{gain['estimate']:.2f} [{gain['ci_low']:.2f}, {gain['ci_high']:.2f}]" in report
    assert "95%" in report
    assert PLOTS_FILE in report and GALLERY_FILE in report
    assert "Lines restoration changed most" in report


def test_markdown_report_without_text_or_generator(models, batch):
    _, recognizer, charset = models
    recognizer_only = score_samples([batch], None, recognizer, charset, CPU)
    report = markdown_report(by_recognizer(in_loop=recognizer_only), recognizer_only, "recognizer only")
    assert "recognizer only (no generator)" in report and "n/a" in report
    assert "**No judge recognizer**" in report
    generator, _, _ = models
    textless = score_samples([line_batch([""] * 2)], generator, recognizer, charset, CPU)
    report = markdown_report(by_recognizer(in_loop=textless), textless, "textless")
    assert "No line with a ground-truth text changed its CER." in report
    assert "no line has a ground-truth text, so there is no CER to compare" in report


def test_pictures_say_restored_keep_legend_colours_and_give_rates_a_whole_axis(samples, tmp_path: Path):
    constant = samples.assign(cer_degraded=1.0, cer_restored=1.0)
    figure = plot_evaluation(constant)
    save_png(figure, tmp_path / "constant.png")
    cer_axes, _, length_axes, _ = figure.axes
    assert cer_axes.get_title() == "Per-line CER: degraded vs restored"
    degraded_bars, restored_bars = cer_axes.containers  # side by side: no bar drawn over another
    assert {bar.get_facecolor() for bar in degraded_bars} != {bar.get_facecolor() for bar in restored_bars}
    assert all(bar.get_alpha() in (None, 1.0) for bar in cer_axes.patches)  # no blended colour
    legend_colours = [handle.get_facecolor() for handle in cer_axes.get_legend().legend_handles]
    assert legend_colours == [degraded_bars[0].get_facecolor(), restored_bars[0].get_facecolor()]
    degraded_x = [bar.get_x() for bar in degraded_bars]
    assert all(bar.get_x() > x for bar, x in zip(restored_bars, degraded_x, strict=True))
    low, high = length_axes.get_ylim()
    assert low < 0.0 < 1.0 < high < 1.1  # a constant CER of 1 on a 0-1 axis, not 0.96-1.04


def test_failure_gallery_shows_an_empty_reading_and_names_each_image(samples, tmp_path: Path):
    row = samples.iloc[:1].assign(reading_restored="")
    image = np.ones((16, 40))
    figure = failure_gallery(row, [(image, image, image)])
    save_png(figure, tmp_path / "nothing_read.png")
    captions = " ".join(text.get_text() for axes in figure.axes for text in axes.texts)
    assert "restored  ∅ (nothing read)" in captions
    titles = [axes.get_title() for axes in figure.axes[:3]]
    assert [title.split("  ")[0] for title in titles] == ["degraded", "restored", "clean"]
    assert all(text.get_fontsize() >= 10 for axes in figure.axes for text in axes.texts)


def test_plots_say_what_they_show_with_the_clean_reference_and_the_gain_interval(samples, tmp_path: Path):
    figures = summarise(samples, resamples=100, seed=0)
    figure = plot_evaluation(samples, figures, "run.pt (epoch 3); split 'test', read by judge (greedy decoding)")
    save_png(figure, tmp_path / PLOTS_FILE)
    assert figure.get_suptitle() == "run.pt (epoch 3); split 'test', read by judge (greedy decoding)"
    cer_axes, psnr_axes, length_axes, figures_axes = figure.axes
    cer_labels = [text.get_text() for text in cer_axes.get_legend().get_texts()]
    assert f"corpus CER clean {figures['cer_corpus_clean']:.3f}" in cer_labels
    gain = figures["psnr_gain_db"]
    psnr_labels = [text.get_text() for text in psnr_axes.get_legend().get_texts()]
    assert f"mean {gain['estimate']:.2f} dB" in psnr_labels and "95% interval" in psnr_labels
    assert psnr_axes.get_xlabel() == "PSNR gain (dB, against the clean line)"
    assert "clean (reference)" in [text.get_text() for text in length_axes.get_legend().get_texts()]
    assert "CER reduction (95% interval)" in figures_axes.texts[0].get_text()
    from htr_pipeline.evaluation.report import evaluation_caption

    summary = {"checkpoint": "data/06_models/x/best.pt (epoch 3)", "split": "test", "headline_recognizer": "judge"}
    caption = evaluation_caption({**summary, "decoding": "greedy"})
    assert caption == "data/06_models/x/best.pt (epoch 3)\nsplit 'test', read by judge (greedy decoding)"
