"""The recognizer's raw outputs on clean lines, kept per line for the CTC and label-convention audits.

One pass over the lines gives, for each, its logits over its own time steps (padding excluded), its CTC loss
(summed over the label, in nats, so the audit can compare summed and length-normalised figures) and the share
of time steps whose best class is the blank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from htr_pipeline.charset import Charset, normalise_text
from htr_pipeline.data.line_batches import (
    LineBatch,
    LinePairDataset,
    input_order_batches,
    line_batch_loader,
    pad_labels,
    padded_width_multiple,
)
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.progress import tqdm
from htr_pipeline.training.ctc_feasibility import adjacent_repeats
from htr_pipeline.training.losses import ctc_loss_per_sample


@dataclass(frozen=True)
class LineReading:
    sample_id: str
    reference: str
    time_steps: int
    label_length: int
    ctc_loss_nats: float
    """CTC negative log-likelihood summed over the label; nan when the text has a character the charset lacks
    or its label cannot fit the time steps."""
    blank_share: float
    """Share of the line's time steps whose argmax is the blank."""
    logits: np.ndarray
    """(time_steps, num_classes) float32."""


def readable_clean_lines(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The lines of ``split`` that a recognizer can be scored on: a transcription and a clean image."""
    return manifest[(manifest["split"] == split) & manifest["transcription"].notna() & manifest["clean_path"].notna()]


@torch.no_grad()
def read_clean_lines(
    recognizer: torch.nn.Module,
    lines: pd.DataFrame,
    store: LineImageStore,
    charset: Charset,
    device: torch.device,
    batch_size: int,
) -> list[LineReading]:
    """The recognizer's reading of the clean image of every line in ``lines`` (each must have a clean image)."""
    dataset = LinePairDataset(lines, store, charset, encode_labels=False)
    # In input order, each line padded only to the recognizer's time step: no generator reads these lines.
    batches = input_order_batches(len(dataset), batch_size)
    loader = line_batch_loader(dataset, batches, padded_width_multiple(recognizer.width_downsampling))
    recognizer = recognizer.to(device).eval()
    readings: list[LineReading] = []
    for batch in tqdm(loader, desc="recognizer on clean lines", unit="batch", leave=False):
        readings += _read_batch(recognizer, batch.to(device), charset)
    return readings


def _read_batch(recognizer: torch.nn.Module, batch: LineBatch, charset: Charset) -> list[LineReading]:
    logits = recognizer(batch.clean).logits.float()
    # logits: (batch, time_steps, num_classes)
    time_steps = [ctc_time_steps(int(width), recognizer.width_downsampling) for width in batch.widths.cpu()]
    losses = _ctc_loss_nats(logits, time_steps, batch.texts, charset)
    best_classes = logits.argmax(dim=-1).cpu()
    readings = []
    for index, (sample_id, text) in enumerate(zip(batch.sample_ids, batch.texts, strict=True)):
        steps = time_steps[index]
        readings.append(
            LineReading(
                sample_id=sample_id,
                reference=text,
                time_steps=steps,
                label_length=len(text),
                ctc_loss_nats=losses[index],
                blank_share=float((best_classes[index, :steps] == charset.blank_index).float().mean()),
                logits=logits[index, :steps].cpu().numpy(),
            )
        )
    return readings


def _ctc_loss_nats(logits: torch.Tensor, time_steps: list[int], texts: list[str], charset: Charset) -> list[float]:
    """Per line, the summed CTC (the per-length loss x L); nan where it cannot be computed."""
    encodable = [bool(text) and not charset.missing_symbols(text) for text in texts]
    labels = [charset.encode(text) if usable else [] for text, usable in zip(texts, encodable, strict=True)]
    targets, label_lengths = pad_labels(labels)
    input_lengths = torch.tensor(time_steps, dtype=torch.int64)
    result = ctc_loss_per_sample(logits, targets.to(logits.device), input_lengths, label_lengths, charset.blank_index)
    repeats = torch.tensor([adjacent_repeats(normalise_text(text)) for text in texts], dtype=torch.int64)
    feasible = input_lengths >= label_lengths + repeats
    summed = (result.per_sample.cpu() * label_lengths.float()).tolist()
    return [
        value if usable and fits else float("nan")
        for value, usable, fits in zip(summed, encodable, feasible.tolist(), strict=True)
    ]


def readings_table(readings: list[LineReading]) -> pd.DataFrame:
    """The per-line numbers without the logits."""
    return pd.DataFrame(
        {
            "sample_id": [reading.sample_id for reading in readings],
            "time_steps": [reading.time_steps for reading in readings],
            "label_length": [reading.label_length for reading in readings],
            "ctc_loss_nats": [reading.ctc_loss_nats for reading in readings],
            "blank_share": [reading.blank_share for reading in readings],
        }
    )
