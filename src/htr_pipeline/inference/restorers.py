"""What the real test (:mod:`htr_pipeline.evaluation.real_scans`) is handed: how a trained run restores a page,
restores a line at the model's height, and how each of its recognizers reads such a line.

Pages are restored as inference restores them (windows at the page's own scale, blended); a line, already at the
model's height and no wider than the widest training line, is restored in windows of that width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.config import RealTestConfig
from htr_pipeline.data.line_batches import PAPER_VALUE
from htr_pipeline.inference.tiling import restore_tiled
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.restoring import restore_images
from htr_pipeline.trained_run import TrainedRun
from htr_pipeline.training.recognizer_training import IN_LOOP_RECOGNIZER, JUDGE_RECOGNIZER

LINE_WINDOW_OVERLAP_PX = 64
WINDOWS_PER_BATCH = 8


@dataclass(frozen=True)
class RealTestRestorers:
    restore_page: Callable[[np.ndarray], np.ndarray]
    restore_line: Callable[[np.ndarray], np.ndarray]
    readers: dict[str, Callable[[np.ndarray], str]]
    """By recognizer, the judge first (the headline) where the run has one, then the in-loop recognizer."""


def real_test_restorers(
    models: TrainedRun,
    charset: Charset,
    line_height: int,
    line_max_width: int,
    config: RealTestConfig,
    device: torch.device,
) -> RealTestRestorers:
    """The page and line restorers and the line readers of ``models``, on ``device``, in eval mode."""
    if models.generator is None:
        raise ValueError("the real test restores scans: it needs a checkpoint with a generator, not a recognizer")
    generator = models.generator.to(device).eval()
    size_multiple = models.size_multiple
    restore = partial(_restored_on, generator, device)
    line_window = line_max_width - line_max_width % size_multiple
    read_by = [role for role in (JUDGE_RECOGNIZER, IN_LOOP_RECOGNIZER) if role in models.recognizers]
    recognizers = {role: models.recognizers[role] for role in read_by}
    return RealTestRestorers(
        restore_page=page_restorer(generator, device, size_multiple, config),
        restore_line=partial(
            restore_tiled,
            restore=restore,
            window_height=line_height,
            window_width=line_window,
            overlap=min(LINE_WINDOW_OVERLAP_PX, line_window // 2),
            ramp="gaussian",
            size_multiple=size_multiple,
            tiles_per_batch=WINDOWS_PER_BATCH,
        ),
        readers={
            name: partial(read_line, recognizer=recognizer.to(device).eval(), charset=charset, device=device)
            for name, recognizer in recognizers.items()
        },
    )


def page_restorer(
    generator: nn.Module, device: torch.device, size_multiple: int, config: RealTestConfig
) -> Callable[[np.ndarray], np.ndarray]:
    """A page (uint8) -> the page restored whole at its own scale, in ``config.page_window`` windows blended over
    ``config.window_overlap`` pixels: how the real test, and validation on real pages, restore a page."""
    page_window = config.page_window - config.page_window % size_multiple
    return partial(
        restore_tiled,
        restore=partial(_restored_on, generator, device),
        window_height=page_window,
        window_width=page_window,
        overlap=config.window_overlap,
        ramp="gaussian",
        size_multiple=size_multiple,
        tiles_per_batch=WINDOWS_PER_BATCH,
    )


@torch.no_grad()
def _restored_on(generator: nn.Module, device: torch.device, batch: torch.Tensor) -> torch.Tensor:
    # batch: (n, 1, height, width) float32 in [0, 1], on the CPU
    return restore_images(generator, batch.to(device)).cpu()


@torch.no_grad()
def read_line(line: np.ndarray, recognizer: nn.Module, charset: Charset, device: torch.device) -> str:
    """Greedy reading of a line at the model's height by ``recognizer`` (it reads any width), padded with paper
    to its width multiple as in training."""
    # line: (line_height, width) uint8
    width_downsampling = recognizer.width_downsampling
    padded_width = math.ceil(line.shape[1] / width_downsampling) * width_downsampling
    pixels = torch.full((1, 1, line.shape[0], padded_width), PAPER_VALUE)
    pixels[0, 0, :, : line.shape[1]] = torch.tensor(line, dtype=torch.float32).div(255.0)
    logits = recognizer(pixels.to(device)).logits.float()
    steps = ctc_time_steps(line.shape[1], width_downsampling)
    return charset.decode_greedy(logits[0, :steps].argmax(dim=-1).tolist())
