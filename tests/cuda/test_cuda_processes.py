"""Two NCCL processes, where two GPUs exist; the benchmark's ladder on a GPU with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml

from htr_pipeline import bench
from htr_pipeline.training.distributed import DataParallelGroup, run_data_parallel
from tests.conftest import CUDA_TESTS, small_synthetic_parameters
from tests.test_bench import LADDER, TINY_TRAINING

pytestmark = CUDA_TESTS


def all_reduce_on_each_gpu(group: DataParallelGroup, device: torch.device, payload: int) -> list[float]:
    summed = torch.full((payload,), float(group.rank + 1), device=device)
    dist.all_reduce(summed)
    return summed.cpu().tolist()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_nccl_processes_reduce_and_hand_back_a_large_result():
    result = run_data_parallel(all_reduce_on_each_gpu, 2**17, 2, "cuda")
    assert len(result) == 2**17 and set(result) == {3.0}


def test_the_ladder_runs_on_the_gpu_with_tiny_models(tmp_path: Path):
    parameters = small_synthetic_parameters()
    parameters["training"] = {**TINY_TRAINING, "device": "cuda"}
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    quick = [
        "--lines",
        "16",
        "--warmup-steps",
        "1",
        "--windows",
        "2",
        "--window-seconds",
        "0.2",
        "--max-batch-size",
        "8",
    ]
    output = bench.main(["--project", str(tmp_path), *quick, "--eval-lines", "4", "--eval-repetitions", "1"])

    report = json.loads(output.read_text())
    assert [rung["name"] for rung in report["ladder"]] == LADDER
    for rung in report["ladder"]:
        assert rung["samples_per_second"] > 0 and rung["gpu_peak_memory_mib"] > 0
        assert rung["cudnn_benchmark"] and rung["warmup_shapes"] >= 1  # autotuning is kept out of the windows
        if report["peak"]["bf16_dense_tflops"] is not None:
            assert 0 < rung["mfu_of_bf16_dense_peak"] < 1
    largest = report["ladder"][LADDER.index("largest_batch")]
    assert largest["batch_size"] >= 2 and "power of two" in largest["batch_size_from"]
    assert report["ladder"][-1]["pin_memory"]
