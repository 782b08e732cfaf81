"""What an ingested data set holds: counts, histograms, character coverage, rejects; as data and one figure."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.charset import Charset, normalise_text
from htr_pipeline.config import SPLIT_NAMES
from htr_pipeline.data.splits import groups_in_several_splits
from htr_pipeline.figure_axes import integer_axis

HISTOGRAM_BINS = 20
GALLERY_LINES = 8


class ImageReader(Protocol):
    def read(self, relative_path: str) -> np.ndarray: ...


def missing_characters(
    sample_ids: Iterable[str], texts: Iterable[str], charset: Charset, examples: int = 3
) -> list[dict[str, Any]]:
    """Characters of these texts, as normalised for the charset, that the charset lacks, most frequent first: each
    with its count, the lines that hold it and the ids of the first ``examples`` of them."""
    occurrences: Counter[str] = Counter()
    line_counts: Counter[str] = Counter()
    example_ids: dict[str, list[str]] = {}
    for sample_id, raw in zip(sample_ids, texts, strict=True):
        text = normalise_text(raw)
        for character in charset.missing_symbols(text):
            occurrences[character] += text.count(character)
            line_counts[character] += 1
            ids = example_ids.setdefault(character, [])
            if len(ids) < examples:
                ids.append(sample_id)
    return [
        {"character": character, "count": count, "lines": line_counts[character], "examples": example_ids[character]}
        for character, count in sorted(occurrences.items(), key=lambda item: (-item[1], item[0]))
    ]


def missing_characters_by_split(charset: Charset, manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Characters of each split's transcriptions that the (train-built) charset lacks, with counts."""
    missing: dict[str, dict[str, int]] = {}
    for split in SPLIT_NAMES:
        lines = manifest.loc[(manifest["split"] == split) & manifest["transcription"].notna()]
        records = missing_characters(lines["sample_id"], lines["transcription"], charset)
        missing[split] = dict(sorted((record["character"], record["count"]) for record in records))
    return missing


def summarise_dataset(
    manifest: pd.DataFrame, rejects: pd.DataFrame, charset: Charset, page_sources: Collection[str] = ()
) -> dict[str, Any]:
    """``page_sources``: names of the sources read a page at a time, whose rejects are also counted per page."""
    texts = manifest["transcription"].dropna()
    label_lengths = texts.str.len()
    return {
        "samples": len(manifest),
        "samples_per_split": _counts(manifest, ["split"]),
        "samples_per_source_and_split": _counts(manifest, ["source", "split"]),
        "samples_without_text": int(manifest["transcription"].isna().sum()),
        "rejects": len(rejects),
        "rejects_per_reason": rejects["reason"].value_counts().sort_index().to_dict() if len(rejects) else {},
        "rejects_per_page_and_reason": rejects_per_page(rejects, page_sources),
        "text_changes": text_changes_counted(manifest),
        "squeezed_lines": int((manifest["width_scale"] < 1.0).sum()),
        "groups_in_several_splits": groups_in_several_splits(
            manifest["split"].tolist(), manifest["group"].where(manifest["group"].notna(), None).tolist()
        ),
        "samples_without_group": int(manifest["group"].isna().sum()),
        "samples_on_real_paper": int(manifest["paper_page"].notna().sum()),
        "paper_pages_per_split": paper_pages_per_split(manifest),
        "width_px": _histogram(manifest["width"].to_numpy()),
        "label_length": _histogram(label_lengths.to_numpy()),
        "charset_size": len(charset.symbols),
        "character_frequencies_train": dict(charset.counts),
        "missing_characters_by_split": missing_characters_by_split(charset, manifest),
    }


def paper_pages_per_split(manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {page: samples}}``: which scanned pages gave each split's samples their paper (``real_paper``)."""
    on_paper = manifest[manifest["paper_page"].notna()]
    return {
        split: {page: int(count) for page, count in sorted(rows["paper_page"].value_counts().items())}
        for split, rows in on_paper.groupby("split")
    }


def text_changes_counted(manifest: pd.DataFrame) -> dict[str, int]:
    """``{"U+200E": count, "entity &eacute;": count}`` over the kept samples: what the text rule and the sources'
    reading changed in their source texts (the manifest's ``text_changes``, summed)."""
    totals: Counter[str] = Counter()
    for removed in manifest["text_changes"].dropna():
        totals.update(json.loads(removed))
    return dict(sorted(totals.items()))


def rejects_per_page(rejects: pd.DataFrame, page_sources: Collection[str]) -> dict[str, dict[str, int]]:
    """``{page XML: {reason: count}}`` for the rejects of the given page sources."""
    of_pages = rejects[rejects["source"].isin(list(page_sources))]
    counts = of_pages.groupby(["path", "reason"]).size()
    per_page: dict[str, dict[str, int]] = {}
    for (page, reason), count in counts.items():
        per_page.setdefault(page, {})[reason] = int(count)
    return per_page


def plot_line_gallery(manifest: pd.DataFrame, images: ImageReader, lines: int = GALLERY_LINES) -> Figure:
    """A few lines, clean and degraded one above the other, with their text and where the degraded version comes
    from (the degradation recipe drawn for it, or the source's own scan), real lines first (spread over their
    sources), to eyeball cutting and degradation: a real line is a line image the source holds, not one rendered
    (``synthesis``) or kept as a page."""
    real_lines = (manifest["image_type"] == "line") & manifest["synthesis"].isna()
    real = manifest[real_lines & manifest["transcription"].notna()]
    pool = real if len(real) else manifest[manifest["transcription"].notna()]
    per_source = -(-lines // max(1, pool["source"].nunique()))
    shown = (
        pd.concat(
            [
                rows.iloc[np.linspace(0, len(rows) - 1, min(per_source, len(rows))).astype(int)]
                for _, rows in pool.groupby("source")
            ]
        ).head(lines)
        if len(pool)
        else pool
    )
    figure = Figure(figsize=(10, 1.5 * max(1, len(shown))), layout="constrained")
    figure.suptitle("Lines as ingested: clean (top) and degraded (bottom) of each, with its degradation", fontsize=10)
    rows_of_axes = figure.subplots(2 * max(1, len(shown)), 1, squeeze=False)[:, 0]
    for position, row in enumerate(shown.itertuples()):
        clean_axis, degraded_axis = rows_of_axes[2 * position], rows_of_axes[2 * position + 1]
        clean_axis.imshow(images.read(row.clean_path), cmap="gray", vmin=0, vmax=255, aspect="equal")
        clean_axis.set_title(f"{row.sample_id} (clean): {row.transcription}", fontsize=8, loc="left")
        degraded_axis.imshow(images.read(row.degraded_path), cmap="gray", vmin=0, vmax=255, aspect="equal")
        degraded_axis.set_title(f"degraded: {degradation_text(row.degradation_recipe)}", fontsize=8, loc="left")
    for axis in rows_of_axes:
        axis.axis("off")
        axis.set_anchor("W")  # lines flush left, so their titles have the figure's width
    return figure


def degradation_text(recipe: str | None) -> str:
    """A manifest's ``degradation_recipe`` (JSON, or null for a source's own degraded scan) in a few words: each
    kind with its strength, ``blur 0.42, stain 0.2`` (the drawn physical parameters are in the manifest)."""
    if recipe is None or (isinstance(recipe, float) and np.isnan(recipe)):
        return "the source's own degraded image"
    steps = json.loads(recipe)
    if not steps:
        return "none drawn (the clean line)"
    return ", ".join(_step_text(step) for step in steps) + " (kind and strength)"


def _step_text(step: dict[str, Any]) -> str:
    """One recipe step: ``blur 0.42``; the composition on real paper names its page and what it drew
    (``real paper dibco:2009-H01 + ink_fading 0.3 + paper_grain 0.8``)."""
    if step["kind"] != "real_paper":
        return f"{step['kind']} {step['strength']:.2g}"
    drawn = [f" + {name} {part['strength']:.2g}" for name, part in step.items() if isinstance(part, dict)]
    return f"real paper {step['page']}{''.join(drawn)}"


def tracked_metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The headline counts of a report, in the form kedro-mlflow's metrics dataset logs (step 0)."""
    values = {f"samples_{split}": summary["samples_per_split"].get(split, 0) for split in SPLIT_NAMES}
    values |= {
        "rejects": summary["rejects"],
        "charset_size": summary["charset_size"],
        "squeezed_lines": summary["squeezed_lines"],
    }
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}


def _counts(manifest: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    grouped = manifest.groupby(columns, dropna=False).size()
    return {"/".join(str(part) for part in np.atleast_1d(key)): int(count) for key, count in grouped.items()}


def whole_number_bins(values: np.ndarray, most: int = HISTOGRAM_BINS) -> np.ndarray:
    """Bin edges for whole numbers (pixel widths, label lengths): each bin holds the same count of whole numbers
    (1, 2, 5, ... of them), edges half-way between, at most about ``most`` bins; never a fractional bin."""
    low, high = int(np.min(values)), int(np.max(values))
    per_bin = max(1, -(-(high - low + 1) // most))
    return np.arange(low, high + per_bin + 1, per_bin) - 0.5


def _histogram(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"count": 0, "bin_edges": [], "counts": []}
    counts, edges = np.histogram(values, bins=whole_number_bins(values))
    return {
        "count": len(values),
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
        "bin_edges": [float(edge) for edge in edges],
        "counts": [int(count) for count in counts],
    }


def plot_dataset_report(manifest: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Four panels: samples per source and split, line widths, label lengths, training character counts."""
    # A bare Figure (no pyplot): no global backend state, nothing left open between runs.
    figure = Figure(figsize=(13, 8), layout="constrained")
    axes = figure.subplots(2, 2)
    per_source = manifest.groupby(["source", "split"]).size().unstack(fill_value=0)
    per_source.reindex(columns=[s for s in SPLIT_NAMES if s in per_source.columns]).plot.bar(ax=axes[0, 0], rot=0)
    axes[0, 0].set(title=f"Samples per source and split ({summary['rejects']} rejected)", ylabel="lines")
    axes[0, 1].hist(manifest["width"], bins=whole_number_bins(manifest["width"].to_numpy()), color="tab:blue")
    axes[0, 1].set(title="Normalised image width", xlabel="width (px)", ylabel="lines")
    lengths = manifest["transcription"].dropna().str.len()
    if len(lengths):
        axes[1, 0].hist(lengths, bins=whole_number_bins(lengths.to_numpy()), color="tab:green")
    axes[1, 0].set(title="Label length", xlabel="label length (characters)", ylabel="lines")
    integer_axis(axes[1, 0], "x")
    frequencies = Counter(summary["character_frequencies_train"]).most_common(60)
    if frequencies:
        symbols, counts = zip(*frequencies, strict=True)
        axes[1, 1].bar(range(len(symbols)), counts, color="tab:orange")
        axes[1, 1].set_xticks(range(len(symbols)), ["␣" if s == " " else s for s in symbols], fontsize=7)
    axes[1, 1].set(title="Most frequent characters (train)", ylabel="occurrences")
    for panel in axes.flat:
        integer_axis(panel, "y")
    return figure
