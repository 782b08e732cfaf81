"""The benchmark's ablation ladder on a tiny project, in-process: one change per rung, warm-up covering every batch
shape, windows of at least the asked time, FLOPs and MFU against a table of device peaks."""

import itertools
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from htr_pipeline import bench
from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import WidthBucketBatchSampler
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.training.data_loading import width_multiple
from tests.conftest import small_synthetic_parameters

TINY_TRAINING = {
    "seed": 3,
    "device": "cpu",
    "batch_size": 4,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "dual_modal", "channels": [8, 16], "text_embedding_dim": 8},
}
LADDER = ["previous_system", "width_buckets", "bf16", "largest_batch", "workers_and_pinning"]
WINDOW_SECONDS = 0.05


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A project folder holding only its config: 32 x 256 px lines and tiny models."""
    parameters = small_synthetic_parameters()
    parameters["training"] = TINY_TRAINING
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    return tmp_path


@pytest.mark.slow
def test_bench_climbs_the_ladder_and_reports_each_rung_and_the_environment(tiny_project: Path, capsys):
    quick = ["--lines", "12", "--warmup-steps", "1", "--windows", "2", "--window-seconds", str(WINDOW_SECONDS)]
    output = bench.main(["--project", str(tiny_project), *quick, "--eval-lines", "4", "--eval-repetitions", "1"])

    assert output.parent == tiny_project / "data" / "09_benchmarks"
    assert output.name.startswith("bench_local_")
    report = json.loads(output.read_text())
    rungs = {rung["name"]: rung for rung in report["ladder"]}
    assert [rung["name"] for rung in report["ladder"]] == LADDER  # no speed setting is on: no sixth rung
    for rung in report["ladder"]:
        assert rung["samples_per_second"] > 0 and rung["step_seconds"] > 0
        assert rung["flops_per_step_counted"] > 0 and rung["tflop_per_second"] > 0
        assert rung["cpu_rss_peak_mib"] > 0
        assert len(rung["windows"]) == 2
        assert all(window["seconds"] >= WINDOW_SECONDS and window["steps"] >= 1 for window in rung["windows"])
        assert rung["mfu_of_bf16_dense_peak"] is None  # a CPU has no entry in the table of peaks
        assert rung["warmup_shapes"] == 0  # nothing is autotuned on a CPU without compile
    previous_system = rungs["previous_system"]
    assert (previous_system["batch_size"], previous_system["precision"], previous_system["loader_workers"]) == (
        2,
        "fp32",
        0,
    )
    assert previous_system["flops_counted_on_batch_shape"] == [2, 1, 32, 256]  # every line padded to max_width
    assert rungs["width_buckets"]["padding_share"] < previous_system["padding_share"]
    assert [rungs[name]["precision"] for name in LADDER] == ["fp32", "fp32", "bf16", "bf16", "bf16"]
    assert rungs["largest_batch"]["batch_size"] == 4  # training.batch_size: a CPU's memory is not probed
    assert rungs["workers_and_pinning"]["loader_workers"] >= 0 and not rungs["workers_and_pinning"]["pin_memory"]
    assert report["last_over_previous_system_samples_per_second"] == pytest.approx(
        rungs["workers_and_pinning"]["samples_per_second"] / previous_system["samples_per_second"]
    )
    assert report["peak"]["bf16_dense_tflops"] is None and "CPU" in report["peak"]["reason"]
    assert report["evaluation"]["lines_per_second"] > 0
    assert report["ingestion"]["lines_per_second"] > 0
    assert (report["data"]["image_height"], report["data"]["max_width"]) == (32, 256)
    environment = report["environment"]
    for key in ("torch_version", "cuda_version", "device_name", "torch_num_threads", "cpu_count", "git_commit"):
        assert key in environment
    for key in ("cudnn_allow_tf32", "cuda_matmul_allow_tf32", "float32_matmul_precision"):
        assert key in environment  # what an fp32 figure on CUDA means
    assert environment["device"] == "cpu"
    assert report["configured"]["training.batch_size"] == 4
    assert "last/previous system" in capsys.readouterr().out


def bench_lines(project: Path, widths: list[int]) -> bench.BenchLines:
    return bench.BenchLines(
        rows=pd.DataFrame({"width": widths}),
        store=LineImageStore(project),
        charset=Charset(symbols=("a", "b")),
        ingested_lines=len(widths),
        ingestion_lines_per_second=1.0,
    )


def test_each_rung_changes_one_thing_over_the_one_before(tiny_project: Path):
    settings = bench.parse_arguments(["--project", str(tiny_project), "--channels-last", "--no-compile"])
    training = bench.load_project_config(settings.project, settings.env).training
    rungs = bench.ladder(training, torch.device("cuda"), (16, "probed"), settings)  # built only: nothing runs

    assert [rung.name for rung in rungs] == [*LADDER, "speed_settings"]
    changed = []
    for before, after in itertools.pairwise(rungs):
        differences = {
            name
            for name in ("full_width", "loader_workers", "pin_memory")
            if getattr(before, name) != getattr(after, name)
        }
        config_before, config_after = before.config.model_dump(), after.config.model_dump()
        differences |= {name for name in config_before if config_before[name] != config_after[name]}
        changed.append(differences)
    assert changed[:3] == [{"full_width"}, {"precision"}, {"batch_size"}]
    assert "pin_memory" in changed[3] <= {"loader_workers", "num_workers", "pin_memory"}  # workers: if CPUs allow
    assert changed[4] == {"speed"} and rungs[-1].config.speed.channels_last and not rungs[-1].config.speed.compile
    first = rungs[0]
    assert (first.config.batch_size, first.config.precision, first.loader_workers, first.pin_memory) == (
        2,
        "fp32",
        0,
        False,
    )
    assert all(rung.config.speed.cudnn_benchmark for rung in rungs)  # on CUDA, on every rung alike


def test_the_warm_up_meets_every_shape_a_windows_batch_can_have(tiny_project: Path):
    settings = bench.parse_arguments(["--project", str(tiny_project)])
    training = bench.load_project_config(settings.project, settings.env).training
    widths = [37, 40, 41, 64, 65, 66, 90, 100, 120, 121, 150, 199, 200, 201, 250, 256, 33, 48, 77, 130]
    lines = bench_lines(tiny_project, widths)
    rung = bench.ladder(training, torch.device("cpu"), (4, "configured"), settings)[LADDER.index("largest_batch")]
    multiple = width_multiple(rung.config)

    warmed = {
        math.ceil(max(widths[index] for index in batch) / multiple) * multiple
        for batch in bench.shape_warmup_batches(rung, lines)
    }
    assert all(len(batch) == 4 for batch in bench.shape_warmup_batches(rung, lines))
    sampler = WidthBucketBatchSampler(widths, 4, seed=rung.config.seed, min_lines=4, pool_batches=2)
    met = set()
    for epoch in range(200):
        sampler.set_epoch(epoch)
        met |= {math.ceil(max(widths[index] for index in batch) / multiple) * multiple for batch in sampler}
    assert met <= warmed


@pytest.mark.parametrize(
    ("device_name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA L4", 121.0),
        ("NVIDIA GeForce RTX 4090", 165.2),
    ],
)
def test_mfu_is_taken_against_the_devices_bf16_dense_peak(device_name: str, tflops: float):
    assert bench.bf16_dense_peak(device_name, "cuda").bf16_dense_tflops == tflops


@pytest.mark.parametrize(
    ("device_name", "reason"),
    [("Tesla V100-SXM2-16GB", "no bf16 tensor cores"), ("NVIDIA Quantum 9000", "not in htr_pipeline.bench")],
)
def test_a_device_without_a_known_peak_has_none_and_says_why(device_name: str, reason: str):
    peak = bench.bf16_dense_peak(device_name, "cuda")
    assert peak.bf16_dense_tflops is None and reason in peak.reason
