"""DataLoaders of line pairs for training and validation, batched by width."""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from htr_pipeline.charset import Charset
from htr_pipeline.config import TrainingConfig
from htr_pipeline.data.line_batches import (
    LinePairDataset,
    PageCropDataset,
    ProcessShare,
    WidthBucketBatchSampler,
    line_batch_loader,
    padded_width_multiple,
)
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.models import generator_size_multiple
from htr_pipeline.training.distributed import SINGLE_PROCESS, DataParallelGroup


def width_multiple(config: TrainingConfig) -> int:
    """The padded-width multiple of every training batch, from the models the config describes."""
    return padded_width_multiple(
        config.recognizer.width_downsampling,
        generator_size_multiple(config.generator),
        config.speed.compile,
        config.speed.batch_width_step_px,
    )


def line_loader(
    rows: pd.DataFrame,
    store: LineImageStore,
    charset: Charset,
    config: TrainingConfig,
    batch_size: int,
    training: bool,
    device: torch.device,
    pages: pd.DataFrame | None = None,
    group: DataParallelGroup = SINGLE_PROCESS,
) -> DataLoader:
    """Training loaders shuffle (by seed and epoch: call ``batch_sampler.set_epoch``) and encode labels. With
    ``training.page_crops``, crops of ``pages`` join the lines (they have the lines' height). In a data-parallel
    ``group`` each process loads its own share of every batch (:class:`ProcessShare`)."""
    dataset: Dataset = LinePairDataset(rows, store, charset, encode_labels=training)
    widths = dataset.widths
    if pages is not None and len(pages) and config.page_crops is not None:
        crops = page_crops(pages, store, rows, config)
        dataset, widths = ConcatDataset([dataset, crops]), widths + crops.widths
    sampler = WidthBucketBatchSampler(
        widths, batch_size, seed=config.seed, shuffle=training, min_lines=group.world_size
    )
    if group.world_size > 1:
        dataset = ProcessShare(dataset, widths, group.rank, group.world_size)
    return line_batch_loader(
        dataset, sampler, width_multiple(config), num_workers=config.num_workers, pin_memory=device.type == "cuda"
    )


def page_crops(
    pages: pd.DataFrame, store: LineImageStore, lines: pd.DataFrame, config: TrainingConfig
) -> PageCropDataset:
    """Crops as high as the lines, so lines and crops share batches."""
    if lines.empty:
        raise ValueError(
            "training.page_crops trains page crops beside text lines, and this split has no line: add a source of "
            "lines (the recognizer pre-trains on them) or set training.page_crops: null"
        )
    settings = config.page_crops
    crop_height = int(lines["height"].iloc[0])
    return PageCropDataset(pages, store, crop_height, settings.width, settings.crops_per_page, config.seed)
