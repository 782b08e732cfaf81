"""Torch datasets and batching of normalised line pairs: padding, labels, width buckets."""

from __future__ import annotations

import dataclasses
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
    host_widths: torch.Tensor | None = None
    """``widths`` on the CPU whatever device the batch is moved to (taken from ``widths`` when the batch is
    built): CTC input lengths and decoding read them there, so reading them never waits for the GPU."""
    host_label_lengths: torch.Tensor | None = None
    """``label_lengths`` on the CPU, likewise: the CTC's target lengths."""

    def __post_init__(self) -> None:
        if self.host_widths is None:
            self.host_widths = self.widths.cpu()
        if self.host_label_lengths is None:
            self.host_label_lengths = self.label_lengths.cpu()

    def pin_memory(self) -> LineBatch:
        """The batch in page-locked memory, so that :meth:`to` a GPU copies asynchronously. A DataLoader with
        ``pin_memory=True`` calls this on every batch (its pinning hands back unchanged any object without it)."""
        return dataclasses.replace(
            self,
            degraded=self.degraded.pin_memory(),
            clean=self.clean.pin_memory(),
            widths=self.widths.pin_memory(),
            labels=self.labels.pin_memory(),
            label_lengths=self.label_lengths.pin_memory(),
        )

    def to(self, device: torch.device) -> LineBatch:
        """The batch on ``device`` (copies from pinned memory do not wait); the host lengths stay on the CPU."""
        return dataclasses.replace(
            self,
            degraded=self.degraded.to(device, non_blocking=True),
            clean=self.clean.to(device, non_blocking=True),
            widths=self.widths.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            label_lengths=self.label_lengths.to(device, non_blocking=True),
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


def collate_line_pairs(pairs: Sequence[LinePair] | ShareOfBatch, width_multiple: int) -> LineBatch:
    """Pad every line on the right with paper to the batch's widest line, rounded up to ``width_multiple``.

    A :class:`ShareOfBatch` is padded to the widest line of its whole batch, as the batch itself would be.
    """
    if isinstance(pairs, ShareOfBatch):
        widest, pairs = pairs.batch_width_px, pairs.pairs
    else:
        widest = max(pair.clean.shape[-1] for pair in pairs)
    widths = [pair.clean.shape[-1] for pair in pairs]
    padded_width = math.ceil(widest / width_multiple) * width_multiple
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


def padded_width_multiple(
    width_downsampling: int, generator_size_multiple: int = 1, compiled: bool = False, width_step_px: int | None = None
) -> int:
    """Padded batch widths are multiples of this: the recognizer's time step (``width_downsampling``), the
    generator's deepest level (``generator_size_multiple``; 1 without a generator) and ``width_step_px``
    (``training.speed.batch_width_step_px``), which is :data:`COMPILED_WIDTH_STEP_PX` by default when the models
    are compiled."""
    multiple = math.lcm(width_downsampling, generator_size_multiple)
    if width_step_px is None and compiled:
        width_step_px = COMPILED_WIDTH_STEP_PX
    return multiple if width_step_px is None else math.lcm(multiple, width_step_px)


@dataclass(frozen=True)
class ShareOfBatch:
    """One data-parallel process's lines of a batch, and the width of the batch's widest line."""

    pairs: list[LinePair]
    batch_width_px: int


class ProcessShare(Dataset[LinePair]):
    """Reads, of each batch, only the lines of one data-parallel process: lines ``rank``, ``rank + world_size``,
    ... (the DataLoader hands a whole batch's indices to ``__getitems__``). The collate pads them to the whole
    batch's widest line, so every per-line computation is what one process computes for the whole batch, and no
    process decodes images another one trains on. Every batch needs at least ``world_size`` lines
    (:class:`WidthBucketBatchSampler`'s ``min_lines``)."""

    def __init__(self, dataset: Dataset[LinePair], widths: Sequence[int], rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside the {world_size} processes")
        self.dataset = dataset
        self.widths = list(widths)
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.widths)

    def __getitem__(self, index: int) -> LinePair:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> ShareOfBatch:
        if len(indices) < self.world_size:
            raise ValueError(f"a batch of {len(indices)} lines cannot give each of {self.world_size} processes one")
        return ShareOfBatch(
            pairs=[self.dataset[index] for index in indices[self.rank :: self.world_size]],
            batch_width_px=max(self.widths[index] for index in indices),
        )


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
    :meth:`set_epoch` before each epoch; the order depends on nothing else, so a resumed run replays it. A batch
    of fewer than ``min_lines`` lines (the last one can be short) is left out: data-parallel processes need one
    line each.
    """

    def __init__(
        self,
        widths: Sequence[int],
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        pool_batches: int = 50,
        min_lines: int = 1,
    ):
        self.widths = list(widths)
        self.batch_size = batch_size
        self.min_lines = min_lines
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
        return [batch for batch in batches if len(batch) >= self.min_lines]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        # Only the last batch of the last pool can be short.
        full_batches, short_batch = divmod(len(self.widths), self.batch_size)
        return full_batches + int(short_batch > 0 and short_batch >= self.min_lines)
