"""Evaluation's per-line tables: every line read as degraded, restored and clean, by the shared scoring loop of
:mod:`htr_pipeline.scoring.lines` (the one validation summarises during training); several recognizers reading
the same lines use :func:`~htr_pipeline.scoring.lines.score_line_tables` directly."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.precision import Precision
from htr_pipeline.restoring import restore_images
from htr_pipeline.scoring.lines import Reader, RecognizerReading, greedy_readings, score_line_tables


@torch.no_grad()
def restore_lines(batch: LineBatch, generator: nn.Module, device: torch.device) -> list[np.ndarray]:
    """The generator's output for each line of ``batch``, cropped to its own width: (height, width) in [0, 1].

    The generator runs in eval mode and is given back in the mode it came in.
    """
    training = generator.training
    generator.eval()
    try:
        restored = restore_images(generator, batch.degraded.to(device)).cpu().numpy()
    finally:
        generator.train(training)
    return [restored[index, 0, :, :width].copy() for index, width in enumerate(batch.widths.cpu().tolist())]


@torch.no_grad()
def score_samples(
    batches: Iterable[LineBatch],
    generator: nn.Module | None,
    recognizer: nn.Module,
    charset: Charset,
    device: torch.device,
    precision: Precision = "fp32",
    read: Reader = greedy_readings,
) -> pd.DataFrame:
    """One row per line, in input order; ``generator=None`` evaluates the recognizer alone (no restored columns).

    ``read`` turns the recognizer's logits into text (greedy best path by default; see ``decoding``).

    Models are put in eval mode for the scoring and given back in the mode they came in.
    """
    readers = {"recognizer": RecognizerReading(recognizer, reads_restored=True)}
    return score_line_tables(batches, generator, readers, charset, device, precision, read)["recognizer"]
