"""How training runs: precision, seeding, and where epoch metrics go (the device: :mod:`htr_pipeline.devices`)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

import torch

from htr_pipeline.config import SpeedConfig


def grad_scaler(device: torch.device, precision: Literal["fp32", "bf16", "fp16"]) -> torch.amp.GradScaler:
    """Loss scaling, needed (and enabled) for fp16 only.

    bf16 has fp32's exponent range, so its gradients need no scaling. That holds because the RNNs never run in a
    16-bit type: autocast would run cuDNN's LSTM and GRU in fp16 even under bf16 (and unscaled, they could
    underflow), so the recognizer's BiLSTM and the discriminator's GRU run in fp32 with autocast off.
    """
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def adam(parameters: Iterable[torch.nn.Parameter], device: torch.device, **settings: Any) -> torch.optim.Adam:
    """Adam; on CUDA its fused kernel: one launch for all parameters instead of several per parameter, which at a
    small batch would leave the GPU waiting for the host. On the CPU, torch's default implementation."""
    return torch.optim.Adam(parameters, fused=True if device.type == "cuda" else None, **settings)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load a saved optimiser state but keep this run's implementation (fused on CUDA, torch's default elsewhere):
    a checkpoint saved on another device must not bring its own along with its hyperparameters."""
    implementations = [
        {key: group[key] for key in ("fused", "foreach") if key in group} for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(state)
    for group, implementation in zip(optimizer.param_groups, implementations, strict=True):
        group.update(implementation)


CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""cuBLAS's fixed workspace that makes its results reproducible (NVIDIA's cuBLAS docs, "Results reproducibility");
read when cuBLAS first starts in the process, so set before any CUDA matrix product."""


def configure_cuda(device: torch.device, speed: SpeedConfig, cudnn_benchmark: bool) -> None:
    """The process-wide CUDA settings of a training stage: cuDNN benchmarking, and ``training.speed.deterministic``
    (deterministic algorithms only, cuDNN's deterministic kernels, cuBLAS's fixed workspace). Nothing on a CPU,
    which is deterministic as it is."""
    if device.type != "cuda":
        return
    if speed.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = cudnn_benchmark and not speed.deterministic


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class MetricTracker(Protocol):
    """Where epoch metrics go: MLflow in the pipeline, a list in tests."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None: ...


class DiscardingTracker:
    """Where the metrics of data-parallel processes other than rank 0 go: nowhere (rank 0 logs for the run)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        pass


class MemoryTracker:
    """Keeps logged metrics in memory: ``history[name] = [(step, value), ...]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.documents: dict[str, Mapping[str, Any]] = {}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.history.setdefault(name, []).append((step, float(value)))

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        self.documents[artifact_file] = values
