"""The benchmark measures the seed's way and the fast path side by side, on a tiny project, in-process."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from htr_pipeline import bench
from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import WidthBucketBatchSampler
from htr_pipeline.data.line_store import LineImageStore
from tests.conftest import small_synthetic_parameters

TINY_TRAINING = {
    "seed": 3,
    "device": "cpu",
    "batch_size": 4,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "dual_modal", "channels": [8, 16], "text_embedding_dim": 8},
}


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A project folder holding only its config: 32 x 256 px lines and tiny models."""
    parameters = small_synthetic_parameters()
    parameters["training"] = TINY_TRAINING
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    return tmp_path


def test_bench_reports_both_paths_their_ratio_and_the_environment(tiny_project: Path, capsys):
    quick = ["--lines", "8", "--warmup-steps", "1", "--windows", "2", "--steps-per-window", "1"]
    output = bench.main(["--project", str(tiny_project), *quick, "--eval-lines", "4", "--eval-repetitions", "1"])

    assert output.parent == tiny_project / "data" / "09_benchmarks"
    assert output.name.startswith("bench_local_")
    report = json.loads(output.read_text())
    seed_way, fast_path = report["paths"]["seed_way"], report["paths"]["fast_path"]
    for path in (seed_way, fast_path):
        assert path["samples_per_second"] > 0
        assert path["step_seconds"] > 0
        assert path["flops_per_step_counted"] > 0
        assert path["tflop_per_second"] > 0
        assert path["cpu_rss_peak_mib"] > 0
        assert len(path["windows"]) == 2
    assert (seed_way["batch_size"], seed_way["precision"], seed_way["loader_workers"]) == (2, "fp32", 0)
    assert seed_way["flops_counted_on_batch_shape"] == [2, 1, 32, 256]  # every line padded to max_width
    assert (fast_path["batch_size"], fast_path["precision"]) == (4, "fp32")  # training.batch_size; fp32 on CPU
    assert report["fast_over_seed_samples_per_second"] == pytest.approx(
        fast_path["samples_per_second"] / seed_way["samples_per_second"]
    )
    assert report["evaluation"]["lines_per_second"] > 0
    assert report["ingestion"]["lines_per_second"] > 0
    assert (report["data"]["image_height"], report["data"]["max_width"]) == (32, 256)
    environment = report["environment"]
    for key in ("torch_version", "cuda_version", "device_name", "torch_num_threads", "cpu_count", "git_commit"):
        assert key in environment
    assert environment["device"] == "cpu"
    assert report["configured"]["training.batch_size"] == 4
    assert "ratio fast/seed" in capsys.readouterr().out


def test_the_seed_way_keeps_the_seed_settings_whatever_the_fast_path_is_given(tiny_project: Path):
    settings = bench.parse_arguments(
        ["--project", str(tiny_project), "--batch-size", "6", "--precision", "bf16", "--channels-last", "--no-compile"]
    )
    config = bench.load_project_config(settings.project, settings.env)
    lines = bench.BenchLines(
        rows=pd.DataFrame({"width": [100, 200, 150]}),
        store=LineImageStore(tiny_project),
        charset=Charset(symbols=("a", "b")),
        ingested_lines=3,
        ingestion_lines_per_second=1.0,
    )
    device = torch.device("cpu")
    fast = bench.fast_path(
        config.training, lines, device, settings.batch_size, settings.precision, settings.speed_changes
    )
    seed = bench.seed_way_path(config.training, lines, config.data.max_width)

    assert (fast.config.batch_size, fast.config.precision) == (6, "bf16")
    assert fast.config.speed.model_dump() == {"channels_last": True, "compile": False, "cudnn_benchmark": False}
    assert fast.loader_workers == max(0, min(4, (os.cpu_count() or 1) - 1))  # training.num_workers is 0
    assert isinstance(fast.loader.batch_sampler, WidthBucketBatchSampler)
    assert (seed.config.batch_size, seed.config.precision, seed.loader_workers) == (2, "fp32", 0)
    assert not any(seed.config.speed.model_dump().values())
