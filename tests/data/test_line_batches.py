"""Batching line pairs: the one loader builder, label padding with the blank, the padded-width multiple."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from htr_pipeline.charset import BLANK_INDEX, Charset
from htr_pipeline.data.images import read_grayscale
from htr_pipeline.data.line_batches import (
    COMPILED_WIDTH_STEP_PX,
    LinePairDataset,
    WidthBucketBatchSampler,
    collate_line_pairs,
    input_order_batches,
    line_batch_loader,
    pad_labels,
    padded_width_multiple,
)
from htr_pipeline.datasets.file_folder import LineImageStore
from tests.conftest import write_line_png


def line_rows(root: Path, widths: list[int]) -> pd.DataFrame:
    rows = []
    for index, width in enumerate(widths):
        write_line_png(root / f"clean_{index}.png", width=width, seed=index)
        write_line_png(root / f"degraded_{index}.png", width=width, seed=100 + index)
        rows.append(
            {
                "sample_id": f"line_{index}",
                "transcription": "ab" * (index + 1),
                "width": width,
                "clean_path": f"clean_{index}.png",
                "degraded_path": f"degraded_{index}.png",
            }
        )
    return pd.DataFrame(rows)


def test_labels_are_padded_with_the_blank_to_the_longest_label():
    labels, lengths = pad_labels([torch.tensor([3, 1]), [], [2, 2, 2]])
    assert labels.tolist() == [[3, 1, BLANK_INDEX], [BLANK_INDEX] * 3, [2, 2, 2]]
    assert lengths.tolist() == [2, 0, 3]
    empty_labels, _ = pad_labels([[], []])
    assert empty_labels.shape == (2, 1), "the CTC loss needs a target column even when no line has text"


def test_padded_width_multiple_joins_recognizer_generator_and_compiled_steps():
    assert padded_width_multiple(4) == 4
    assert padded_width_multiple(4, 8) == 8
    assert padded_width_multiple(8, 2) == 8
    assert padded_width_multiple(4, 8, compiled=True) == COMPILED_WIDTH_STEP_PX


def test_input_order_loader_batches_as_a_plain_sequential_loader(tmp_path: Path):
    rows = line_rows(tmp_path, [40, 24, 60, 32, 36])
    dataset = LinePairDataset(rows, LineImageStore(tmp_path), Charset.from_texts(["ab"]), encode_labels=True)
    built = list(line_batch_loader(dataset, input_order_batches(len(dataset), 2), width_multiple=8))
    plain = DataLoader(dataset, batch_size=2, shuffle=False, collate_fn=lambda pairs: collate_line_pairs(pairs, 8))
    assert [batch.sample_ids for batch in built] == [["line_0", "line_1"], ["line_2", "line_3"], ["line_4"]]
    for ours, theirs in zip(built, plain, strict=True):
        assert torch.equal(ours.degraded, theirs.degraded) and torch.equal(ours.labels, theirs.labels)
        assert ours.degraded.shape[-1] % 8 == 0


def test_width_bucket_loader_pads_each_batch_to_its_widest_line(tmp_path: Path):
    rows = line_rows(tmp_path, [40, 24, 60, 32])
    dataset = LinePairDataset(rows, LineImageStore(tmp_path), Charset.from_texts(["ab"]), encode_labels=False)
    sampler = WidthBucketBatchSampler(dataset.widths, 2, seed=0, shuffle=False)
    batches = list(line_batch_loader(dataset, sampler, width_multiple=16))
    assert sorted(batch.degraded.shape[-1] for batch in batches) == [32, 64]
    assert all(batch.label_lengths.tolist() == [0, 0] for batch in batches), "validation keeps texts as strings"


def test_the_line_store_reads_its_images_as_read_grayscale_does(tmp_path: Path):
    path = write_line_png(tmp_path / "line.png", width=50, seed=3)
    assert np.array_equal(LineImageStore(tmp_path).read("line.png"), read_grayscale(path))
