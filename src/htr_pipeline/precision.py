"""How forward passes run: the autocast context of a ``precision`` setting (training, scoring, inference)."""

from __future__ import annotations

import contextlib

import torch

from htr_pipeline.config import Precision


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward passes; the CTC and its log-softmax stay fp32 (see losses)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
