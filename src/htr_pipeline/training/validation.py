"""Validation: read lines with the recognizer and score them against the ground truth and the clean image."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.metrics import character_error_rates, combined_score, psnr_db, ssim, word_error_rates
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.training.runtime import autocast


@dataclass(frozen=True)
class ValidationMetrics:
    cer: float
    """Corpus-level: total character edits / total reference length, against the ground-truth text."""
    wer: float
    psnr_db: float
    ssim: float
    combined: float
    lines: int

    def as_logged(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}/cer": self.cer,
            f"{prefix}/wer": self.wer,
            f"{prefix}/psnr": self.psnr_db,
            f"{prefix}/ssim": self.ssim,
            f"{prefix}/combined": self.combined,
        }

    def value_of(self, monitor: str) -> float:
        return {"val/cer": self.cer, "val/psnr": self.psnr_db, "val/ssim": self.ssim, "val/combined": self.combined}[
            monitor
        ]


def greedy_readings(logits: torch.Tensor, widths: torch.Tensor, width_downsampling: int, charset: Charset) -> list[str]:
    """Best-path decoding of each line over its own time steps (padding excluded)."""
    # logits: (batch, time_steps, num_classes)
    best_paths = logits.argmax(dim=-1).cpu()
    return [
        charset.decode_greedy(best_paths[i, : ctc_time_steps(int(width), width_downsampling)].tolist())
        for i, width in enumerate(widths.cpu())
    ]


@torch.no_grad()
def score_lines(
    batches: Iterable[LineBatch],
    recognizer: torch.nn.Module,
    charset: Charset,
    device: torch.device,
    precision: str,
    cer_weight: float,
    enhance: Callable[[torch.Tensor], torch.Tensor] | None = None,
    read_clean: bool = False,
) -> ValidationMetrics:
    """Score ``enhance(degraded)`` (or the degraded input itself, or the clean line) against clean and the text.

    PSNR and SSIM compare each line, cropped to its own width, with its clean image (data range 1.0); CER and
    WER compare the recognizer's greedy reading with the ground-truth transcription, corpus-level.
    """
    references, readings, psnrs, ssims = [], [], [], []
    for batch in batches:
        batch = batch.to(device)
        with autocast(device, precision):  # type: ignore[arg-type]
            candidate = batch.clean if read_clean else batch.degraded
            if enhance is not None and not read_clean:
                candidate = enhance(candidate)
            logits = recognizer(candidate.float()).logits
        readings += greedy_readings(logits.float(), batch.widths, recognizer.width_downsampling, charset)
        references += batch.texts
        candidate_images = candidate.float().clamp(0, 1).cpu().numpy()
        clean_images = batch.clean.cpu().numpy()
        for index, width in enumerate(batch.widths.cpu().tolist()):
            clean_line = clean_images[index, 0, :, :width]
            candidate_line = candidate_images[index, 0, :, :width]
            psnrs.append(psnr_db(clean_line, candidate_line))
            ssims.append(ssim(clean_line, candidate_line))
    with_text = [i for i, reference in enumerate(references) if reference]
    cer = character_error_rates([references[i] for i in with_text], [readings[i] for i in with_text]).corpus
    wer = word_error_rates([references[i] for i in with_text], [readings[i] for i in with_text]).corpus
    mean_psnr, mean_ssim = float(np.mean(psnrs)), float(np.mean(ssims))
    return ValidationMetrics(
        cer=cer,
        wer=wer,
        psnr_db=mean_psnr,
        ssim=mean_ssim,
        combined=combined_score(mean_psnr, cer, cer_weight),
        lines=len(references),
    )
