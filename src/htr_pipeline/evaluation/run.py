"""Evaluating a trained run on one split: per-line table, summary, report, plots, failure gallery."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.data import DataLoader

from htr_pipeline.charset import Charset
from htr_pipeline.config import EvaluationConfig
from htr_pipeline.data.line_batches import (
    LinePairDataset,
    WidthBucketBatchSampler,
    collate_line_pairs,
    line_batch_loader,
    padded_width_multiple,
)
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.evaluation.aggregates import summarise
from htr_pipeline.evaluation.decoding import reader
from htr_pipeline.evaluation.report import (
    changed_lines,
    evaluation_caption,
    failure_gallery,
    markdown_report,
    plot_evaluation,
)
from htr_pipeline.evaluation.scoring import restore_lines
from htr_pipeline.scoring.lines import RecognizerReading, score_line_tables
from htr_pipeline.trained_run import TrainedRun
from htr_pipeline.training.recognizer_training import (
    DEGRADED_TRAINED_RECOGNIZER,
    IN_LOOP_RECOGNIZER,
    JUDGE_RECOGNIZER,
)


def figure_image(figure: Figure, dpi: int = 110) -> Image.Image:
    """A figure rendered once to an image, so the catalog can store it and load it back (notebooks)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB")


class EmptyEvaluationSplitError(ValueError):
    """The split to evaluate holds no line samples."""


@dataclass
class EvaluationResult:
    samples: pd.DataFrame
    summary: dict[str, Any]
    report: str
    plots: Figure
    gallery: Figure


def evaluate_split(
    manifest: pd.DataFrame, store: LineImageStore, charset: Charset, run: TrainedRun, config: EvaluationConfig
) -> EvaluationResult:
    """Every line of ``config.split`` read by each recognizer of ``run`` (restored by its generator, if any)."""
    run.check_charset(charset)
    rows = manifest[(manifest["split"] == config.split) & (manifest["image_type"] == "line")]
    if rows.empty:
        raise EmptyEvaluationSplitError(
            f"evaluation.split '{config.split}' has no line samples in the manifest; choose another split or "
            "ingest data with one (data.split_fractions / lines_per_split)."
        )
    device = resolve_device(config.device, "evaluation.device")
    dataset = LinePairDataset(rows, store, charset, encode_labels=False)
    loader = _loader(dataset, run, config.batch_size)
    started = time.perf_counter()
    beam_size = config.beam_search.beam_size if config.beam_search is not None else None
    generator = run.generator.to(device) if run.generator is not None else None
    tables = score_line_tables(loader, generator, _readers(run, device), charset, device, read=reader(beam_size))
    lines_per_second = len(rows) / (time.perf_counter() - started)  # each line read by every recognizer
    headline = HEADLINE_RECOGNIZER if HEADLINE_RECOGNIZER in tables else IN_LOOP_RECOGNIZER
    summary = {
        "split": config.split,
        "checkpoint": run.description,
        "evaluated_mlflow_run_id": run.mlflow_run_id,
        "recognizer_only": run.generator is None,
        "decoding": f"beam search (width {beam_size})" if beam_size else "greedy",
        "lines_per_second": lines_per_second,
        "headline_recognizer": headline,
        "recognizers": list(tables),
        **{
            name: summarise(table, resamples=config.bootstrap_resamples, seed=config.bootstrap_seed)
            for name, table in tables.items()
        },
    }
    samples = pd.concat([table.assign(recognizer=name) for name, table in tables.items()], ignore_index=True)
    samples = samples[["recognizer", *(column for column in samples.columns if column != "recognizer")]]
    headline_samples = tables[headline]
    changed = changed_lines(headline_samples, config.gallery_lines)
    caption = evaluation_caption(summary)
    return EvaluationResult(
        samples=samples,
        summary=summary,
        report=markdown_report(summary, headline_samples, run.description),
        plots=plot_evaluation(headline_samples, summary[headline], caption),
        gallery=failure_gallery(changed, _gallery_images(changed, dataset, run, device), caption),
    )


HEADLINE_RECOGNIZER = JUDGE_RECOGNIZER
"""The recognizer whose figures are the headline, when the checkpoint holds it."""


def _readers(run: TrainedRun, device: torch.device) -> dict[str, RecognizerReading]:
    """Each recognizer that reads the split, by role, the in-loop one first. The degraded-trained baseline reads
    without the generator: it answers what training on degraded lines alone achieves."""
    return {
        name: RecognizerReading(recognizer.to(device), reads_restored=name != DEGRADED_TRAINED_RECOGNIZER)
        for name, recognizer in run.recognizers.items()
    }


def _loader(dataset: LinePairDataset, run: TrainedRun, batch_size: int) -> DataLoader:
    generator_multiple = run.size_multiple if run.generator is not None else 1
    multiple = padded_width_multiple(run.recognizer.width_downsampling, generator_multiple)
    sampler = WidthBucketBatchSampler(dataset.widths, batch_size, seed=0, shuffle=False)
    return line_batch_loader(dataset, sampler, multiple)


def _gallery_images(lines: pd.DataFrame, dataset: LinePairDataset, run: TrainedRun, device: torch.device):
    """(degraded, restored, clean) arrays of the gallery's lines; restored is recomputed for these few lines."""
    position = {sample_id: index for index, sample_id in enumerate(dataset.rows["sample_id"])}
    images = []
    for sample_id in lines["sample_id"]:
        pair = dataset[position[sample_id]]
        degraded, clean = pair.degraded[0].numpy(), pair.clean[0].numpy()
        restored = degraded
        if run.generator is not None:
            batch = collate_line_pairs([pair], width_multiple=1)
            (restored,) = restore_lines(batch, run.generator, device)
        images.append((degraded, restored, clean))
    return images
