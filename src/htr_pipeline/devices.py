"""Which torch device a ``device`` setting means, for every pipeline (training, evaluation, inference,
diagnostics, the benchmark): ``auto`` takes the GPU when there is one, ``cuda`` without one is an error."""

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
