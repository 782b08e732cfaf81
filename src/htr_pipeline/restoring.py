"""Restoring images with a generator: the one place its output is made, for validation, evaluation and inference."""

from __future__ import annotations

import torch
from torch import nn

from htr_pipeline.precision import Precision, autocast


def restore_images(generator: nn.Module, degraded: torch.Tensor, precision: Precision = "fp32") -> torch.Tensor:
    """The generator's output for a batch on the generator's device, in fp32 and within [0, 1]."""
    # degraded: (batch, 1, height, width), values in [0, 1]; width a multiple of the generator's size_multiple
    with autocast(degraded.device, precision):
        restored = generator(degraded)
    # Half-precision outputs can round a hair outside [0, 1], which the image metrics reject.
    return restored.float().clamp(0.0, 1.0)
