"""Which torch device a ``device`` setting means, for every pipeline (training, evaluation, inference,
diagnostics, the benchmark): ``auto`` takes the GPU when there is one, ``cuda`` without one is an error; and how
a host tensor reaches the device without a wait."""

from __future__ import annotations

from typing import Literal

import torch

DeviceSetting = Literal["auto", "cpu", "cuda"]


class DeviceUnavailableError(RuntimeError):
    """A ``device: cuda`` setting (or more devices than there are GPUs) on a machine without them."""


def resolve_device(setting: DeviceSetting, config_key: str) -> torch.device:
    """The device ``setting`` means; ``config_key`` (``evaluation.device``) is the setting the error names.

    Asking for ``cuda`` without a GPU is an error, never a silent CPU run."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{config_key} is 'cuda' but torch sees no GPU (torch.cuda.is_available() is False). "
            f"Use {config_key}: auto or cpu, or install a CUDA build of torch."
        )
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device`` without making the host wait for the device.

    A plain ``.to(cuda)`` of a CPU tensor is a blocking copy: it waits until the GPU has run everything queued
    before it. Copied from page-locked memory with ``non_blocking``, it is queued like any kernel instead.
    """
    if tensor.device == device:
        return tensor
    if tensor.device.type == "cpu" and device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
