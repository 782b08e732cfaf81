"""The names of checkpoint files and which file a checkpoint setting names.

Part of the checkpoint owner, :mod:`htr_pipeline.checkpoints`, which re-exports all of it; kept in a module of
its own, free of torch, so that the config schema can validate checkpoint names without importing torch (as
:mod:`htr_pipeline.metric_names` is to the metrics).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

CheckpointName = Literal["best", "last", "best_cer", "best_psnr", "best_ssim", "best_combined", "best_page_f_measure"]
"""The checkpoints a GAN training run keeps in its folder, each as ``<name>.pt``."""
CHECKPOINT_NAMES: tuple[CheckpointName, ...] = typing.get_args(CheckpointName)
LAST: CheckpointName = "last"
BEST: CheckpointName = "best"
"""Best by ``training.monitor``; ``best_<metric>`` hold the best epoch of each metric."""
CHECKPOINT_SUFFIX = ".pt"


def best_of_metric(metric: str) -> CheckpointName:
    """The checkpoint holding the best epoch of a validation metric (``val/cer`` -> ``best_cer``)."""
    name = f"best_{metric.split('/')[-1]}"
    if name not in CHECKPOINT_NAMES:
        raise ValueError(f"no checkpoint keeps the best epoch of {metric!r}; kept: {', '.join(CHECKPOINT_NAMES)}")
    return typing.cast(CheckpointName, name)


def checkpoint_file_name(name: CheckpointName) -> str:
    return f"{name}{CHECKPOINT_SUFFIX}"


def checkpoint_file(folder: str | Path, name: CheckpointName) -> Path:
    return Path(folder) / checkpoint_file_name(name)


def named_file(setting: str | None) -> Path | None:
    """The file a checkpoint setting names (one ending in ``.pt``); None for null or an MLflow run id."""
    return Path(setting) if setting is not None and Path(setting).suffix == CHECKPOINT_SUFFIX else None
