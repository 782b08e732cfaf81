"""The one checkpoint format: saved atomically, loaded with ``weights_only=True``, restored strictly.

A training checkpoint holds everything a resumed run needs to continue exactly: model, optimiser, scheduler
and scaler states, the loss balancer, early stopping and best-metric trackers, gradient statistics history,
RNG states, epoch and step, the MLflow run id, the charset and the validated config. Only tensors and plain
Python containers are stored, so ``torch.load(..., weights_only=True)`` can read it.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from htr_pipeline.charset import Charset

FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"
"""How every ``torch.save`` file begins: one that does, yet whose archive cannot be read, is cut short."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used here: missing, another charset, or weights of another shape."""


def save_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save({"format_version": FORMAT_VERSION, **state}, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, config_key: str) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); ``config_key`` names the setting that pointed here."""
    if not Path(path).is_file():
        raise CheckpointError(f"{config_key}: checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        if isinstance(error, PermissionError):
            raise
        # Torch's own message advises weights_only=False, which would run whatever code the file holds.
        with open(path, "rb") as handle:
            truncated = handle.read(4) == ZIP_MAGIC and not isinstance(error, pickle.UnpicklingError)
        raise CheckpointError(
            f"{config_key}: '{path}' ({Path(path).stat().st_size:,} bytes) is not a checkpoint of this project"
            f"{', or it is truncated' if truncated else ''}: "
            f"{'its zip archive is incomplete' if truncated else 'it is no tensors-only PyTorch file'}. "
            f"Re-copy it, or point {config_key} at another checkpoint."
        ) from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_key}: '{path}' holds checkpoint format {version!r}, not this project's {FORMAT_VERSION}. "
            f"Point {config_key} at a checkpoint this project wrote."
        )
    return state


def check_same_charset(stored: Mapping[str, Any], charset: Charset, path: Path) -> None:
    stored_charset = Charset.from_dict(stored)
    if stored_charset.symbols != charset.symbols:
        only_stored = sorted(set(stored_charset.symbols) - set(charset.symbols))
        only_here = sorted(set(charset.symbols) - set(stored_charset.symbols))
        raise CheckpointError(
            f"{path} was trained with another charset ({len(stored_charset.symbols)} symbols vs "
            f"{len(charset.symbols)} here; only in the checkpoint: {only_stored[:20]}, only here: {only_here[:20]}, "
            "or a different order). Use the data it was trained on, or train anew."
        )


def restore_weights(module: nn.Module, weights: Mapping[str, torch.Tensor], what: str, path: Path) -> None:
    """Strict load: a missing, unexpected or mis-shaped tensor is an error, never a partial load.

    Keys and shapes are checked before anything is copied (``load_state_dict`` copies every tensor that fits
    before it raises), so a refused checkpoint leaves the module as it was.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mis_shaped = sorted(
        f"{name}: {tuple(weights[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    )
    if missing or unexpected or mis_shaped:
        raise CheckpointError(
            f"{path}: the {what} weights do not fit this model (missing: {missing[:10]}, unexpected: "
            f"{unexpected[:10]}, shapes checkpoint vs model: {mis_shaped[:10]}). Nothing was loaded."
        )
    module.load_state_dict(weights, strict=True)


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "python": _python_state_as_lists(random.getstate())}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def _python_state_as_lists(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]
