"""Nodes of data_ingestion: call the data library with the validated ``data`` section, return data."""

from __future__ import annotations

from typing import Any

import pandas as pd
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import assign_splits, charset_document, ingest
from htr_pipeline.data.report import plot_dataset_report, plot_line_gallery, summarise_dataset, tracked_metrics
from htr_pipeline.data.sources import Reject, SampleCandidate, read_sources
from htr_pipeline.data.sources.registry import page_source_names
from htr_pipeline.evaluation.run import figure_image


def read_configured_sources(data: DataConfig) -> tuple[list[SampleCandidate], list[Reject]]:
    reading = read_sources(data)
    return reading.candidates, reading.rejects


def split_samples(candidates: list[SampleCandidate], data: DataConfig) -> list[SampleCandidate]:
    return assign_splits(candidates, data)


def materialise_samples(
    candidates: list[SampleCandidate], source_rejects: list[Reject], data: DataConfig
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    dataset = ingest(candidates, source_rejects, data)
    return dataset.images, dataset.manifest, dataset.rejects


def build_charset(manifest: pd.DataFrame) -> dict[str, Any]:
    return charset_document(manifest)


def report_dataset(
    manifest: pd.DataFrame, rejects: pd.DataFrame, charset: Charset, line_images: Any, data: DataConfig
) -> tuple[dict[str, Any], Image.Image, Image.Image, dict[str, dict[str, float]]]:
    summary = summarise_dataset(manifest, rejects, charset, page_source_names(data.sources))
    # Rendered once at the catalog's usual 110 dpi: the file, its kedro-viz preview and MLflow's copy are one image.
    plots = figure_image(plot_dataset_report(manifest, summary))
    return summary, plots, figure_image(plot_line_gallery(manifest, line_images)), tracked_metrics(summary)
