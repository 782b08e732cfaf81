"""Data-parallel training inside one node: one process per GPU (NCCL) or per CPU share (gloo).

``kedro run`` stays one process; the training node spawns the workers (never wrap ``kedro run`` in torchrun).
Every worker loads only its share of each global batch (:class:`htr_pipeline.data.line_batches.ProcessShare`),
padded to the global batch's width, so every per-line computation is what one process computes; gradients are
averaged by ``DistributedDataParallel``. Rank 0 alone validates, logs and writes checkpoints, and its result is
what the spawning process gets back.
"""

from __future__ import annotations

import datetime
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from htr_pipeline.devices import DeviceUnavailableError

COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)
"""Ranks other than 0 wait in the next collective while rank 0 validates and saves: a long validation must not
time them out."""


@dataclass(frozen=True)
class DataParallelGroup:
    """This process's place in a data-parallel run; the default is a run of one process (every method a no-op)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """The module whose backward averages gradients over the processes (itself in a one-process run)."""
        if self.world_size == 1:
            return module
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def average(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The mean over the processes of each 0-d tensor (one collective for all of them)."""
        if self.world_size == 1 or not values:
            return dict(values)
        names = sorted(values)
        stacked = torch.stack([values[name].detach().float() for name in names])
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return {name: total / self.world_size for name, total in zip(names, stacked, strict=True)}

    def total(self, count: int, device: torch.device) -> int:
        """The sum of ``count`` over the processes (``device``: this process's, where the collective runs)."""
        if self.world_size == 1:
            return count
        summed = torch.tensor(count, dtype=torch.int64, device=device)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return int(summed)

    def broadcast_from_main(self, flag: bool) -> bool:
        """Rank 0's value of ``flag`` on every process (rank 0 decides, for example, to stop early)."""
        if self.world_size == 1:
            return flag
        shared = [flag]
        dist.broadcast_object_list(shared, src=0)
        return bool(shared[0])


SINGLE_PROCESS = DataParallelGroup()

Worker = Callable[[DataParallelGroup, torch.device, Any], Any]
"""``worker(group, device, payload)``: runs on every process; what rank 0 returns is the run's result."""


RESULT_FILE = "result.pickle"
RENDEZVOUS_FILE = "rendezvous"


def run_data_parallel(worker: Worker, payload: Any, world_size: int, device_type: str) -> Any:
    """Start ``world_size`` processes running ``worker`` and return rank 0's result.

    ``worker`` must be a module-level function and ``payload`` picklable (processes are spawned, not forked).
    The processes meet through a file in a fresh temporary folder (no TCP port to race for), and rank 0 leaves its
    result there: a result passed through a pipe would block rank 0 once it outgrew the pipe's buffer (64 KiB)
    while the parent waited for rank 0 to exit.
    """
    if device_type == "cuda" and torch.cuda.device_count() < world_size:
        raise DeviceUnavailableError(
            f"training.devices is {world_size} but torch sees {torch.cuda.device_count()} GPU(s); "
            "lower training.devices"
        )
    with tempfile.TemporaryDirectory(prefix="htr_data_parallel_") as folder:
        exchange = Path(folder)
        mp.spawn(_process_main, args=(world_size, exchange, device_type, worker, payload), nprocs=world_size, join=True)
        with open(exchange / RESULT_FILE, "rb") as handle:
            return pickle.load(handle)


def _process_main(rank: int, world_size: int, exchange: Path, device_type: str, worker: Worker, payload: Any) -> None:
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
        # The processes share the machine's cores; each taking all of them would oversubscribe it.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    dist.init_process_group(
        backend="nccl" if device_type == "cuda" else "gloo",
        init_method=(exchange / RENDEZVOUS_FILE).as_uri(),
        rank=rank,
        world_size=world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )
    try:
        result = worker(DataParallelGroup(rank, world_size), device, payload)
        if rank == 0:
            written = exchange / f".{RESULT_FILE}.partial"
            with open(written, "wb") as handle:
                pickle.dump(result, handle)
            written.replace(exchange / RESULT_FILE)
    finally:
        dist.destroy_process_group()
