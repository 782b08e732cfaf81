"""Torch datasets and batching of normalised line pairs: padding, labels, width buckets."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from htr_pipeline.charset import BLANK_INDEX, Charset
from htr_pipeline.data.line_store import LineImageStore

PAPER_VALUE = 1.0
"""Batches are padded on the right with white paper."""

COMPILED_WIDTH_STEP_PX = 64
"""With ``training.speed.compile`` batch widths are rounded up to a multiple of this, so few shapes repeat and
each compiles once (compiled with static shapes: inductor's dynamic-width kernels fail on the CPU in torch 2.13)."""


@dataclass(frozen=True)
class LinePair:
    sample_id: str
    # degraded, clean: (1, height, width) float32 in [0, 1]
    degraded: torch.Tensor
    clean: torch.Tensor
    text: str
    labels: torch.Tensor
    """(label_length,) int64 label indices; empty for a line without text."""


@dataclass
class LineBatch:
    sample_ids: list[str]
    # degraded, clean: (batch, 1, height, padded_width) float32 in [0, 1]
    degraded: torch.Tensor
    clean: torch.Tensor
    widths: torch.Tensor
    """(batch,) int64 width of each line before padding."""
    labels: torch.Tensor
    """(batch, max_label_length) int64, padded with the blank."""
    label_lengths: torch.Tensor
    texts: list[str]

    def to(self, device: torch.device) -> LineBatch:
        return LineBatch(
            sample_ids=self.sample_ids,
            degraded=self.degraded.to(device, non_blocking=True),
            clean=self.clean.to(device, non_blocking=True),
            widths=self.widths.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            label_lengths=self.label_lengths.to(device, non_blocking=True),
            texts=self.texts,
        )

    def shard(self, rank: int, world_size: int) -> LineBatch:
        """Lines ``rank``, ``rank + world_size``, ... of the batch, keeping the batch's padded width, so every
        process of a data-parallel run computes exactly what one process computes for those lines."""
        rows = slice(rank, None, world_size)
        return LineBatch(
            sample_ids=self.sample_ids[rows],
            degraded=self.degraded[rows],
            clean=self.clean[rows],
            widths=self.widths[rows],
            labels=self.labels[rows],
            label_lengths=self.label_lengths[rows],
            texts=self.texts[rows],
        )


class LinePairDataset(Dataset[LinePair]):
    """Degraded/clean line pairs of one split, read on demand from the ingestion's image folder.

    With ``encode_labels`` (training) every text is encoded through the charset, and a character it lacks
    raises; without (validation), texts stay strings scored against the readings, so characters the charset
    lacks count as errors instead of disappearing.
    """

    def __init__(self, manifest: pd.DataFrame, store: LineImageStore, charset: Charset, encode_labels: bool):
        self.rows = manifest.reset_index(drop=True)
        self.store = store
        self.charset = charset
        self.encode_labels = encode_labels

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def widths(self) -> list[int]:
        return self.rows["width"].astype(int).tolist()

    def __getitem__(self, index: int) -> LinePair:
        row = self.rows.iloc[index]
        text = row["transcription"] if isinstance(row["transcription"], str) else ""
        labels = self.charset.encode(text) if self.encode_labels and text else []
        return LinePair(
            sample_id=row["sample_id"],
            degraded=_as_tensor(self.store.read(row["degraded_path"])),
            clean=_as_tensor(self.store.read(row["clean_path"])),
            text=text,
            labels=torch.tensor(labels, dtype=torch.int64),
        )


class PageCropDataset(Dataset[LinePair]):
    """Random crops of degraded/clean page pairs, as line pairs without text (no CTC, no text loss for them).

    Crop positions are drawn once from ``seed``, so every epoch and every loader worker sees the same crops, and
    a resumed run too. Each page is read once per process and kept (pages are few, crops many).
    """

    def __init__(
        self,
        pages: pd.DataFrame,
        store: LineImageStore,
        crop_height: int,
        crop_width: int,
        crops_per_page: int,
        seed: int,
    ):
        self.pages = pages.reset_index(drop=True)
        self.store = store
        self.crop_height, self.crop_width = crop_height, crop_width
        self.crops_per_page = crops_per_page
        self.origins = [self._crop_origins(row, seed + index) for index, row in self.pages.iterrows()]
        self._page_images: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _crop_origins(self, page: pd.Series, seed: int) -> list[tuple[int, int]]:
        height, width = int(page["height"]), int(page["width"])
        if height < self.crop_height or width < self.crop_width:
            raise ValueError(
                f"page {page['sample_id']} ({width} x {height} px) is smaller than a {self.crop_width} x "
                f"{self.crop_height} crop: lower training.page_crops.width or leave the page out"
            )
        rng = np.random.default_rng(seed)
        tops = rng.integers(0, height - self.crop_height + 1, size=self.crops_per_page)
        lefts = rng.integers(0, width - self.crop_width + 1, size=self.crops_per_page)
        return list(zip(tops.tolist(), lefts.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.pages) * self.crops_per_page

    @property
    def widths(self) -> list[int]:
        return [self.crop_width] * len(self)

    def __getitem__(self, index: int) -> LinePair:
        page_index, crop_index = divmod(index, self.crops_per_page)
        degraded, clean = self._page(page_index)
        top, left = self.origins[page_index][crop_index]
        rows, columns = slice(top, top + self.crop_height), slice(left, left + self.crop_width)
        return LinePair(
            sample_id=f"{self.pages.at[page_index, 'sample_id']}#crop{crop_index:03d}",
            degraded=_as_tensor(degraded[rows, columns]),
            clean=_as_tensor(clean[rows, columns]),
            text="",
            labels=torch.zeros(0, dtype=torch.int64),
        )

    def _page(self, page_index: int) -> tuple[np.ndarray, np.ndarray]:
        if page_index not in self._page_images:
            row = self.pages.iloc[page_index]
            self._page_images[page_index] = (self.store.read(row["degraded_path"]), self.store.read(row["clean_path"]))
        return self._page_images[page_index]


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    # image: (height, width) uint8 -> (1, height, width) float32 in [0, 1]
    return torch.from_numpy(image).to(torch.float32).div_(255.0).unsqueeze(0)


def collate_line_pairs(pairs: Sequence[LinePair], width_multiple: int) -> LineBatch:
    """Pad every line on the right with paper to the batch's widest line, rounded up to ``width_multiple``."""
    widths = [pair.clean.shape[-1] for pair in pairs]
    padded_width = math.ceil(max(widths) / width_multiple) * width_multiple
    height = pairs[0].clean.shape[-2]
    degraded = torch.full((len(pairs), 1, height, padded_width), PAPER_VALUE)
    clean = torch.full_like(degraded, PAPER_VALUE)
    for index, pair in enumerate(pairs):
        degraded[index, :, :, : widths[index]] = pair.degraded
        clean[index, :, :, : widths[index]] = pair.clean
    labels, label_lengths = pad_labels([pair.labels for pair in pairs])
    return LineBatch(
        sample_ids=[pair.sample_id for pair in pairs],
        degraded=degraded,
        clean=clean,
        widths=torch.tensor(widths, dtype=torch.int64),
        labels=labels,
        label_lengths=label_lengths,
        texts=[pair.text for pair in pairs],
    )


def pad_labels(labels: Sequence[torch.Tensor | Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Label sequences as one (lines, longest label, at least 1) int64 tensor padded with the blank, and their
    (lines,) lengths: the targets the CTC loss takes."""
    longest_label = max((len(label) for label in labels), default=0)
    padded = torch.full((len(labels), max(longest_label, 1)), BLANK_INDEX, dtype=torch.int64)
    for index, label in enumerate(labels):
        padded[index, : len(label)] = torch.as_tensor(label, dtype=torch.int64)
    return padded, torch.tensor([len(label) for label in labels], dtype=torch.int64)


def padded_width_multiple(width_downsampling: int, generator_size_multiple: int = 1, compiled: bool = False) -> int:
    """Padded batch widths are multiples of this: the recognizer's time step (``width_downsampling``), the
    generator's deepest level (``generator_size_multiple``; 1 without a generator) and, when the models are
    compiled, :data:`COMPILED_WIDTH_STEP_PX`."""
    multiple = math.lcm(width_downsampling, generator_size_multiple)
    return math.lcm(multiple, COMPILED_WIDTH_STEP_PX) if compiled else multiple


def line_batch_loader(
    dataset: Dataset[LinePair],
    batch_sampler: Sampler[list[int]],
    width_multiple: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The one DataLoader over line pairs: batches of ``batch_sampler``, padded by :func:`collate_line_pairs`."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=partial(collate_line_pairs, width_multiple=width_multiple),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def input_order_batches(line_count: int, batch_size: int) -> BatchSampler:
    """Batches of consecutive lines in input order (the last one may be short)."""
    return BatchSampler(SequentialSampler(range(line_count)), batch_size, drop_last=False)


class WidthBucketBatchSampler(Sampler[list[int]]):
    """Batches of lines of similar width, in an order fixed by (seed, epoch).

    Indices are shuffled, cut into pools of ``pool_batches`` batches, each pool sorted by width and cut into
    batches, then the batches are shuffled: little padding, yet every epoch sees a different order. Call
    :meth:`set_epoch` before each epoch; the order depends on nothing else, so a resumed run replays it.
    """

    def __init__(self, widths: Sequence[int], batch_size: int, seed: int, shuffle: bool = True, pool_batches: int = 50):
        self.widths = list(widths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.pool_batches = pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        count = len(self.widths)
        order = torch.randperm(count, generator=generator).tolist() if self.shuffle else list(range(count))
        pool_size = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, count, pool_size):
            pool = sorted(order[start : start + pool_size], key=lambda i: self.widths[i])
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.widths) / self.batch_size)
