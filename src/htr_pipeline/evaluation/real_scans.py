"""A held-out test on real degradation: real scans that no training used, restored by a trained run.

Two kinds of material, each answering its own question:

- **real page pairs** (DIBCO style: scans with a binarization ground truth): is the restored page closer to the
  ground truth? Input and restored page are binarised the same way (Otsu or Sauvola) and scored with the DIBCO
  metrics of :mod:`htr_pipeline.metrics`; the gains come with paired bootstrap intervals over pages.
- **real degraded lines with their transcription and no clean image** (the archive itself): does restoration make
  them easier to read? Each recognizer (the judge first) reads the raw line and the restored line; the corpus CER
  reduction comes with a paired bootstrap interval over lines.

Nothing here loads a model: the caller hands over how to restore a page, how to restore a line at the model's
height and how each recognizer reads such a line, so the same scoring serves any trained run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from htr_pipeline.config import RealTestConfig
from htr_pipeline.data.images import normalise_line, read_grayscale
from htr_pipeline.data.real_paper import ground_truth_pairs
from htr_pipeline.data.sources.line_folder import LineFolderSource
from htr_pipeline.data.sources.reading import read_source
from htr_pipeline.data.sources.units import SourceContext
from htr_pipeline.evaluation.aggregates import paired_corpus_reduction, paired_mean_gain
from htr_pipeline.evaluation.report import NOTHING_READ, RESTORED
from htr_pipeline.metrics import binarise, character_error_rates, corpus_rate, dibco_scores, word_error_rates
from htr_pipeline.progress import tqdm
from htr_pipeline.project_paths import project_relative

DIBCO_METRICS: tuple[str, ...] = ("f_measure", "pseudo_f_measure", "psnr_db", "drd")
"""The page scores, as :func:`htr_pipeline.metrics.dibco_scores` names them; DRD alone is better when lower."""
LOWER_IS_BETTER = frozenset({"drd"})

RestorePage = Callable[[np.ndarray], np.ndarray]
"""A page (height, width) uint8 -> the restored page, same size, uint8."""
RestoreLine = Callable[[np.ndarray], np.ndarray]
"""A line at the model's height (image_height, width) uint8 -> the restored line, same size, uint8."""
ReadLine = Callable[[np.ndarray], str]
"""A line at the model's height (image_height, width) uint8 -> one recognizer's reading."""


class RealTestInputError(ValueError):
    """The real test's folders hold nothing to score, or are missing: the message names the key."""


@dataclass(frozen=True)
class RealLine:
    """A real degraded line: its image file and its transcription (no clean image exists)."""

    sample_id: str
    path: Path
    transcription: str


@dataclass(frozen=True)
class RealPagePair:
    page: str
    scan_path: Path
    ground_truth_path: Path


@dataclass
class RealTestResult:
    pages: pd.DataFrame
    """One row per page: size, and each DIBCO metric of the input (``degraded_*``) and the restored page."""
    lines: pd.DataFrame
    """One row per line and recognizer: the readings of the raw and the restored line, edits and lengths."""
    summary: dict[str, Any]
    pictures: Figure
    restored_pages: dict[str, np.ndarray]
    """``<page>.png`` -> the restored page (uint8), for the picture and anyone who wants to look closer."""


# --------------------------------------------------------------------------------------------- inputs


def real_page_pairs(config: RealTestConfig) -> list[RealPagePair]:
    """The page pairs of ``evaluation.real_test.page_pairs``; an error naming the key when there are none."""
    settings = config.page_pairs
    if settings is None:
        return []
    root = Path(settings.path)
    if not (root / "images").is_dir():
        raise RealTestInputError(
            f"evaluation.real_test.page_pairs.path: '{root}' (resolved: '{root.resolve()}') has no images/ folder; "
            "point it at a DIBCO-style folder (images/<id>.png and gt/<id>_gt.png)"
        )
    pairs, missing = ground_truth_pairs(root, settings.include)
    if missing:
        raise RealTestInputError(
            f"evaluation.real_test.page_pairs: {len(missing)} scan(s) in '{root}/images' have no ground truth in "
            f"gt/ ({', '.join(missing[:5])}); add them, or leave them out with `include`"
        )
    if not pairs:
        raise RealTestInputError(
            f"evaluation.real_test.page_pairs: no scan in '{root}/images' matches include {settings.include!r}"
        )
    return [RealPagePair(stem, scan, truth) for stem, scan, truth in pairs]


def real_lines(config: RealTestConfig) -> tuple[list[RealLine], int]:
    """The lines of ``evaluation.real_test.lines`` (of its ``split``), and how many of the folder's inputs were
    unusable (read as a ``line_folder`` source is: the same layouts, the same rejects)."""
    settings = config.lines
    if settings is None:
        return [], 0
    root = Path(settings.path)
    if not root.is_dir():
        raise RealTestInputError(
            f"evaluation.real_test.lines.path: folder '{root}' (resolved: '{root.resolve()}') does not exist"
        )
    source = LineFolderSource(kind=LineFolderSource.kind_name(), name="real_lines", path=root)
    reading = read_source(source, SourceContext(key="evaluation.real_test.lines", seed=0))
    lines = [
        RealLine(candidate.sample_id, Path(str(candidate.clean_pixels.path)), candidate.transcription)
        for candidate in reading.candidates
        if settings.split is None or candidate.split == settings.split
    ]
    if not lines:
        raise RealTestInputError(
            f"evaluation.real_test.lines: no line of split {settings.split!r} with a transcription in '{root}' "
            f"({len(reading.rejects)} rejected); check its labels.tsv and splits.tsv, or set split: null"
        )
    return lines, len(reading.rejects)


# -------------------------------------------------------------------------------------------- scoring


def score_real_pages(
    pairs: Sequence[RealPagePair],
    restore_page: RestorePage,
    config: RealTestConfig,
    progress: str = "real test: pages",
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each page restored, then input and restored page binarised alike and scored against the ground truth."""
    rows, restored_pages = [], {}
    for pair in tqdm(pairs, desc=progress, unit="page"):
        started = time.perf_counter()
        scan = read_grayscale(pair.scan_path)
        truth = read_grayscale(pair.ground_truth_path) < 128
        if truth.shape != scan.shape:
            raise RealTestInputError(
                f"evaluation.real_test.page_pairs: {pair.ground_truth_path} is {truth.shape[1]} x {truth.shape[0]} "
                f"px but its scan {scan.shape[1]} x {scan.shape[0]} px; they must be the same size"
            )
        restored = restore_page(scan)
        row: dict[str, Any] = {"page": pair.page, "width": scan.shape[1], "height": scan.shape[0]}
        for name, image in (("degraded", scan), ("restored", restored)):
            ink = binarise(image, config.binarise, config.sauvola_window)
            row |= {f"{name}_{metric}": value for metric, value in dibco_scores(ink, truth).items()}
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        restored_pages[f"{pair.page}.png"] = restored
    return pd.DataFrame(rows), restored_pages


def score_real_lines(
    lines: Sequence[RealLine],
    restore_line: RestoreLine,
    readers: Mapping[str, ReadLine],
    image_height: int,
    max_width: int,
) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each line normalised as ingestion normalises lines, restored, and read raw and restored by every reader.

    Returns the table and, by sample id, the (raw, restored) images at the model's height.
    """
    rows, images = [], {}
    for line in tqdm(lines, desc="real test: lines", unit="line"):
        raw = normalise_line(read_grayscale(line.path), image_height, max_width).image
        restored = restore_line(raw)
        images[line.sample_id] = (raw, restored)
        for recognizer, read in readers.items():
            readings = {"raw": read(raw), "restored": read(restored)}
            row: dict[str, Any] = {
                "recognizer": recognizer,
                "sample_id": line.sample_id,
                "file": line.path.name,
                "transcription": line.transcription,
            }
            for variant, reading in readings.items():
                characters = character_error_rates([line.transcription], [reading])
                words = word_error_rates([line.transcription], [reading])
                row |= {
                    f"reading_{variant}": reading,
                    f"char_edits_{variant}": characters.edits,
                    f"cer_{variant}": characters.corpus,
                    f"word_edits_{variant}": words.edits,
                }
                row["char_reference_length"] = characters.reference_length
                row["word_reference_length"] = words.reference_length
            rows.append(row)
    return pd.DataFrame(rows), images


def summarise_real_test(
    pages: pd.DataFrame,
    lines: pd.DataFrame,
    config: RealTestConfig,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
    rejected_lines: int = 0,
) -> dict[str, Any]:
    """The real test's figures: page means with gain intervals, line CER/WER with the CER reduction's interval."""
    summary: dict[str, Any] = {"bootstrap_resamples": resamples, "bootstrap_seed": seed, "confidence_level": confidence}
    if not pages.empty:
        summary["pages"] = {
            "source": project_relative(config.page_pairs.path) if config.page_pairs else None,
            "include": config.page_pairs.include if config.page_pairs else None,
            "pages": len(pages),
            "binarisation": config.binarise,
            **{metric: _page_metric(pages, metric, resamples, seed, confidence) for metric in DIBCO_METRICS},
        }
    if not lines.empty:
        by_recognizer = {
            recognizer: _line_figures(table, resamples, seed, confidence)
            for recognizer, table in lines.groupby("recognizer", sort=False)
        }
        summary["lines"] = {
            "source": project_relative(config.lines.path) if config.lines else None,
            "split": config.lines.split if config.lines else None,
            "lines": int(lines["sample_id"].nunique()),
            "rejected": rejected_lines,
            "headline_recognizer": next(iter(by_recognizer)),
            **by_recognizer,
        }
    return summary


def _page_metric(pages: pd.DataFrame, metric: str, resamples: int, seed: int, confidence: float) -> dict[str, Any]:
    degraded = pages[f"degraded_{metric}"].to_numpy(dtype=np.float64)
    restored = pages[f"restored_{metric}"].to_numpy(dtype=np.float64)
    worse = restored > degraded if metric in LOWER_IS_BETTER else restored < degraded
    return {
        "degraded": float(degraded.mean()),
        "restored": float(restored.mean()),
        "gain": paired_mean_gain(degraded, restored, resamples, seed, confidence),
        "pages_worse": sorted(pages.loc[worse, "page"].tolist()),
    }


def _line_figures(table: pd.DataFrame, resamples: int, seed: int, confidence: float) -> dict[str, Any]:
    lengths = table["char_reference_length"].to_numpy()
    word_lengths = table["word_reference_length"].to_numpy()
    return {
        "cer_corpus_raw": corpus_rate(table["char_edits_raw"], lengths),
        "cer_corpus_restored": corpus_rate(table["char_edits_restored"], lengths),
        "cer_reduction": paired_corpus_reduction(
            table["char_edits_raw"].to_numpy(),
            table["char_edits_restored"].to_numpy(),
            lengths,
            resamples,
            seed,
            confidence,
        ),
        "wer_corpus_raw": corpus_rate(table["word_edits_raw"], word_lengths),
        "wer_corpus_restored": corpus_rate(table["word_edits_restored"], word_lengths),
        "lines_read_better": int((table["char_edits_restored"] < table["char_edits_raw"]).sum()),
        "lines_read_worse": int((table["char_edits_restored"] > table["char_edits_raw"]).sum()),
    }


# ------------------------------------------------------------------------------------------- pictures

PICTURE_WIDTH_IN = 16.0
PICTURE_TEXT_CHARS = 90


def real_test_pictures(
    pages: pd.DataFrame,
    scans_and_restored: Sequence[tuple[str, np.ndarray, np.ndarray]],
    lines: pd.DataFrame,
    line_images: Mapping[str, tuple[np.ndarray, np.ndarray]],
    count: int,
) -> Figure:
    """Side by side: real pages as scanned and restored (those whose F-measure moved most, either way), then real
    lines raw and restored, each under the headline recognizer's readings and the truth."""
    shown_pages = _pages_to_show(pages, count)
    by_page = {page: (scan, restored) for page, scan, restored in scans_and_restored}
    headline = lines["recognizer"].iloc[0] if not lines.empty else None
    shown_lines = _lines_to_show(lines[lines["recognizer"] == headline], count) if headline else pd.DataFrame()
    rows = len(shown_pages) + len(shown_lines)
    figure = _new_figure(PICTURE_WIDTH_IN, max(2.0, 3.2 * len(shown_pages) + 1.6 * len(shown_lines)))
    if rows == 0:
        axes = figure.subplots(1, 1)
        axes.axis("off")
        axes.text(0.5, 0.5, "no real material scored", ha="center", va="center", color="grey")
        return figure
    ratios = [3.2] * len(shown_pages) + [1.6] * len(shown_lines)
    grid = figure.add_gridspec(rows, 2, height_ratios=ratios)
    for row, page in enumerate(shown_pages.itertuples()):
        scan, restored = by_page[page.page]
        for column, (image, label, f_value) in enumerate(
            ((scan, "input", page.degraded_f_measure), (restored, RESTORED, page.restored_f_measure))
        ):
            axes = figure.add_subplot(grid[row, column])
            axes.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="lanczos")
            axes.set_title(f"{page.page}, {label}: F-measure {f_value:.2f} (Otsu alike)", fontsize=9)
            axes.axis("off")
    for offset, line in enumerate(shown_lines.itertuples()):
        raw, restored = line_images[line.sample_id]
        for column, (image, variant) in enumerate(((raw, "raw"), (restored, "restored"))):
            axes = figure.add_subplot(grid[len(shown_pages) + offset, column])
            axes.imshow(image, cmap="gray", vmin=0, vmax=255, aspect="equal")
            axes.set_anchor("W")  # a narrow line starts its column, so its left-aligned title has the column's width
            reading = getattr(line, f"reading_{variant}") or NOTHING_READ
            cer = getattr(line, f"cer_{variant}")
            label = RESTORED if variant == "restored" else "raw"
            title = f"{line.file} {label}, {headline} CER {cer:.2f}\nread: {_cut(reading)}"
            axes.set_title(f"{title}\ntruth: {_cut(line.transcription)}", fontsize=8, loc="left")
            axes.axis("off")
    return figure


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A figure on matplotlib's Agg canvas (no pyplot, no global state), as the evaluation report draws them."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _pages_to_show(pages: pd.DataFrame, count: int) -> pd.DataFrame:
    if pages.empty:
        return pages
    change = (pages["restored_f_measure"] - pages["degraded_f_measure"]).abs()
    return pages.loc[change.sort_values(ascending=False).index[:count]]


def _lines_to_show(lines: pd.DataFrame, count: int) -> pd.DataFrame:
    """Half the lines restoration helped most, half those it hurt most (or helped least)."""
    if lines.empty:
        return lines
    gain = (lines["char_edits_raw"] - lines["char_edits_restored"]) / lines["char_reference_length"].clip(lower=1)
    ordered = gain.sort_values(ascending=False)
    chosen = list(dict.fromkeys([*ordered.index[: (count + 1) // 2], *ordered.index[::-1][: count // 2]]))
    return lines.loc[chosen]


def _cut(text: str) -> str:
    return text if len(text) <= PICTURE_TEXT_CHARS else text[: PICTURE_TEXT_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------------------- the test


def run_real_test(
    config: RealTestConfig,
    restore_page: RestorePage,
    restore_line: RestoreLine,
    readers: Mapping[str, ReadLine],
    image_height: int,
    max_width: int,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> RealTestResult:
    """Score the real pages and lines ``config`` names; ``readers`` in the order their figures are reported
    (the first is the headline: the judge where the run has one)."""
    pairs = real_page_pairs(config)
    lines, rejected = real_lines(config)
    pages_table, restored_pages = score_real_pages(pairs, restore_page, config)
    lines_table, line_images = (
        score_real_lines(lines, restore_line, readers, image_height, max_width) if lines else (pd.DataFrame(), {})
    )
    summary = {
        "configured": True,
        **summarise_real_test(pages_table, lines_table, config, resamples, seed, confidence, rejected),
    }
    shown = set(_pages_to_show(pages_table, config.pictures)["page"]) if not pages_table.empty else set()
    scans_and_restored = [
        (pair.page, read_grayscale(pair.scan_path), restored_pages[f"{pair.page}.png"])
        for pair in pairs
        if pair.page in shown
    ]
    pictures = real_test_pictures(pages_table, scans_and_restored, lines_table, line_images, config.pictures)
    return RealTestResult(pages_table, lines_table, summary, pictures, restored_pages)


NOT_CONFIGURED_NOTE = (
    "evaluation.real_test is null: no real degraded material was scored. Name real page pairs and real lines under "
    "evaluation.real_test (README, 'The real test') to see whether restoration holds on real scans."
)


def real_test_not_configured() -> RealTestResult:
    """What an evaluation without ``evaluation.real_test`` records: that nothing real was scored, and why."""
    figure = _new_figure(6.0, 1.0)
    axes = figure.subplots(1, 1)
    axes.axis("off")
    axes.text(0.5, 0.5, "no real test: evaluation.real_test is null", ha="center", va="center", color="grey")
    return RealTestResult(
        pd.DataFrame(), pd.DataFrame(), {"configured": False, "note": NOT_CONFIGURED_NOTE}, figure, {}
    )


def real_test_metrics(summary: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The real test's headline figures as MLflow metrics (``real_test/<name>``, step 0): each page metric of the
    input and the restored page and its gain, and each recognizer's CER of raw and restored lines."""
    values: dict[str, float] = {}
    pages = summary.get("pages")
    if pages is not None:
        for metric in DIBCO_METRICS:
            values[f"pages_{metric}_degraded"] = pages[metric]["degraded"]
            values[f"pages_{metric}_restored"] = pages[metric]["restored"]
            values[f"pages_{metric}_gain"] = pages[metric]["gain"]["estimate"]
    lines = summary.get("lines")
    if lines is not None:
        for recognizer in (key for key, value in lines.items() if isinstance(value, dict)):
            figures = lines[recognizer]
            values[f"lines_{recognizer}_cer_raw"] = figures["cer_corpus_raw"]
            values[f"lines_{recognizer}_cer_restored"] = figures["cer_corpus_restored"]
            values[f"lines_{recognizer}_cer_reduction"] = figures["cer_reduction"]["estimate"]
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}
