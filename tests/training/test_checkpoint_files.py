"""A file that is no checkpoint of this project is one error naming key and file, never torch's advice to
load it unsafely."""

from pathlib import Path

import numpy as np
import pytest
import torch

from htr_pipeline.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint

KEY = "training.resume_from"


def _load_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, KEY)
    message = str(raised.value)
    assert "weights_only" not in message
    assert message.startswith(f"{KEY}: '{path}'") and message.endswith(f"point {KEY} at another checkpoint.")
    return message


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path):
    path = tmp_path / "last.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "(4,096 bytes) is not a checkpoint of this project: it is no tensors-only PyTorch file" in _load_error(path)


def test_a_truncated_checkpoint_says_so(tmp_path: Path):
    path = tmp_path / "last.pt"
    save_checkpoint({"weights": torch.zeros(64, 64)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "is not a checkpoint of this project, or it is truncated: its zip archive is incomplete" in _load_error(path)


def test_a_pickled_object_is_not_loaded(tmp_path: Path):
    path = tmp_path / "model.pt"
    torch.save({"where": Path("x")}, path)
    assert "it is no tensors-only PyTorch file" in _load_error(path)


def test_another_format_names_the_key(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=rf"{KEY}: '.*other\.pt' holds checkpoint format None, not this"):
        load_checkpoint(path, KEY)
