"""Training throughput as an ablation ladder in one process: from the previous system's way to this project's fast
path, one change per rung, so that each gain is seen on its own.

    python -m htr_pipeline.bench --env previous_system [--device auto|cpu|cuda] [--lines N] [--warmup-steps N]
        [--windows N] [--window-seconds S] [--batch-size N] [--max-batch-size N] [--[no-]channels-last] [--[no-]compile]
        [--eval-lines N] [--eval-repetitions N] [--output PATH] [--project PATH]

The rungs, each the one before with one change:

1. ``previous_system``: what the previous system did: fp32, batch 2, lines in random order, every line padded to the
   full ``data.max_width``, loaded in the training process (no loader worker, no pinned memory).
2. ``width_buckets``: batches of lines of similar width, each padded to its widest line.
3. ``bf16``: bf16 autocast (the RNNs, the logits and the CTC stay fp32).
4. ``largest_batch``: on CUDA the largest batch that fits (powers of two up to ``--max-batch-size``, each tried for
   two steps at the widest line); elsewhere ``--batch-size`` or ``training.batch_size``.
5. ``workers_and_pinning``: loader workers (``training.num_workers``, or ``min(4, cpu_count - 1)`` when it is 0)
   and, on CUDA, pinned memory with non-blocking copies.
6. ``speed_settings``, only when any is on: ``training.speed``'s ``channels_last`` and ``compile`` as configured,
   changed by ``--[no-]channels-last`` and ``--[no-]compile``.

Every rung trains the env's models (the recognizer freshly initialised: speed does not depend on its weights)
with ``build_gan_models`` and ``GanTrainer.train_step``, in one process, on the same synthetic lines, rendered and
degraded by the ingestion library at the env's image height and maximum width. On CUDA every rung runs with
cuDNN benchmarking (the previous system's TensorFlow autotuned its convolutions too), and its warm-up runs one step for
every batch shape its windows can meet, so no window pays for autotuning (nor, with ``compile``, for
compiling). A window runs steps until ``--window-seconds`` have passed, then waits for the device: its time
includes loading its batches. Figures are medians over ``--windows`` windows.

Also measured: FLOPs per step (counted, scaled to each window's padded columns), MFU against the device's bf16
dense peak (:data:`BF16_DENSE_PEAKS`), peak GPU memory and CPU RSS per rung, evaluation lines/s (the evaluation
library's scoring with generator and recognizer), ingestion lines/s, and the TF32 and matmul-precision settings
every fp32 figure depends on.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

import htr_pipeline.quiet_warnings  # noqa: F401  (the library warnings kedro run silences)
from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import RecognizerCheckpoint
from htr_pipeline.config import (
    DataConfig,
    Precision,
    ProjectConfig,
    SpeedConfig,
    TrainingConfig,
    validate_parameters,
)
from htr_pipeline.data.ingestion import image_files, manifest_table
from htr_pipeline.data.line_batches import (
    LineBatch,
    LinePairDataset,
    WidthBucketBatchSampler,
    collate_line_pairs,
    line_batch_loader,
    padded_width_multiple,
)
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.sources import read_sources
from htr_pipeline.data.sources.synthetic import SplitCounts, SyntheticSource
from htr_pipeline.datasets.file_folder import FileFolderDataset
from htr_pipeline.devices import resolve_device
from htr_pipeline.evaluation.scoring import score_samples
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.progress import tqdm
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS
from htr_pipeline.training.data_loading import width_multiple
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer
from htr_pipeline.training.runtime import configure_cuda, seed_everything
from htr_pipeline.training.stages import build_gan_models, line_splits, load_recognizer

PREVIOUS_SYSTEM_BATCH_SIZE = 2
MAX_DEFAULT_LOADER_WORKERS = 4
CTC_FACTOR = 1.0
"""Steps run with the full CTC term, as after any CTC warm-up: the schedule changes the weight, not the work."""
EVALUATION_PRECISION: Precision = "fp32"
"""The evaluation pipeline scores in fp32 (``evaluate_split`` leaves ``score_samples`` at its default)."""
MIB = 2**20
BENCHMARK_FOLDER = Path("data") / "09_benchmarks"
PRECISION_DTYPES = {
    "fp32": "float32 (on CUDA, cuDNN convolutions in TF32 unless torch.backends.cudnn.allow_tf32 is off)",
    "bf16": "bfloat16 autocast; RNNs, logits and CTC in fp32",
    "fp16": "float16 autocast + GradScaler; RNNs, logits and CTC in fp32",
}

BF16_DENSE_PEAKS: tuple[tuple[str, float, str], ...] = (
    (r"GH200", 989.4, "GH200 (its H100)"),
    (r"H200.*NVL", 835.5, "H200 NVL"),
    (r"H200", 989.4, "H200 SXM"),
    (r"H100.*PCIe", 756.5, "H100 PCIe"),
    (r"H100.*NVL", 835.5, "H100 NVL"),
    (r"H100", 989.4, "H100 SXM"),
    (r"A100", 312.0, "A100"),
    (r"L40S", 362.05, "L40S"),
    (r"RTX 4090", 165.2, "GeForce RTX 4090, fp32 accumulation"),
    (r"RTX 3090", 71.0, "GeForce RTX 3090, fp32 accumulation"),
    (r"\bL4\b", 121.0, "L4"),
    (r"\bA10\b", 125.0, "A10"),
)
"""Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets, by a pattern of the name
torch gives the device; the first pattern that matches wins (so the variants come before their family)."""
WITHOUT_BF16 = (r"V100", r"\bT4\b", r"P100")
"""GPUs without bf16 tensor cores: no bf16 peak to compare with."""


@dataclass(frozen=True)
class DevicePeak:
    bf16_dense_tflops: float | None
    reason: str
    """Where the peak comes from, or why there is none."""


def bf16_dense_peak(device_name: str, device_type: str) -> DevicePeak:
    """The device's bf16 dense peak from :data:`BF16_DENSE_PEAKS`, or ``None`` and why."""
    if device_type != "cuda":
        return DevicePeak(None, f"{device_name} is a CPU: the table holds GPUs' bf16 tensor-core peaks")
    if any(re.search(pattern, device_name, re.IGNORECASE) for pattern in WITHOUT_BF16):
        return DevicePeak(None, f"{device_name} has no bf16 tensor cores")
    for pattern, tflops, source in BF16_DENSE_PEAKS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return DevicePeak(tflops, f"{source}: {tflops:g} TFLOP/s bf16 dense (NVIDIA data sheet)")
    return DevicePeak(
        None, f"'{device_name}' is not in htr_pipeline.bench.BF16_DENSE_PEAKS: add its bf16 dense peak there"
    )


@dataclass(frozen=True)
class BenchSettings:
    """The command line, resolved: what a run measures and where its report goes."""

    project: Path
    env: str
    device: str | None
    batch_size: int | None
    max_batch_size: int
    speed_changes: dict[str, bool]
    """``training.speed`` settings the command line changes for the last rung."""
    lines: int
    warmup_steps: int
    windows: int
    window_seconds: float
    eval_lines: int
    eval_repetitions: int
    output: Path | None


def parse_arguments(argv: Sequence[str] | None = None) -> BenchSettings:
    parser = argparse.ArgumentParser(prog="python -m htr_pipeline.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="Kedro project folder (holds conf/)")
    parser.add_argument(
        "--env",
        default=CONFIG_LOADER_ARGS["default_run_env"],
        help="config env, merged over conf/base (default: %(default)s)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: training.device")
    parser.add_argument("--batch-size", type=int, help="the largest_batch rung off CUDA (default: training.batch_size)")
    parser.add_argument(
        "--max-batch-size", type=int, default=64, help="the largest batch tried on CUDA (default: %(default)s)"
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="speed_settings rung; default: training.speed.channels_last",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="speed_settings rung; default: training.speed.compile (its warm-up compiles every batch shape)",
    )
    parser.add_argument("--lines", type=int, default=64, help="synthetic lines to train on")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps before the shapes' warm-up and windows")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument(
        "--window-seconds", type=float, default=1.0, help="a window runs steps until this much time has passed"
    )
    parser.add_argument("--eval-lines", type=int, default=32, help="lines the evaluation scoring reads")
    parser.add_argument("--eval-repetitions", type=int, default=3)
    parser.add_argument("--output", type=Path, help="JSON report; default data/09_benchmarks/bench_<env>_<UTC>.json")
    arguments = parser.parse_args(argv)
    for name in ("lines", "windows", "eval_lines", "eval_repetitions", "max_batch_size"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.warmup_steps < 0 or (arguments.batch_size is not None and arguments.batch_size < 1):
        parser.error("--warmup-steps must be >= 0 and --batch-size >= 1")
    if not arguments.window_seconds > 0:
        parser.error("--window-seconds must be > 0")
    return BenchSettings(
        project=arguments.project.resolve(),
        env=arguments.env,
        device=arguments.device,
        batch_size=arguments.batch_size,
        max_batch_size=arguments.max_batch_size,
        speed_changes={
            setting: value
            for setting in ("channels_last", "compile")
            if (value := getattr(arguments, setting)) is not None
        },
        lines=arguments.lines,
        warmup_steps=arguments.warmup_steps,
        windows=arguments.windows,
        window_seconds=arguments.window_seconds,
        eval_lines=arguments.eval_lines,
        eval_repetitions=arguments.eval_repetitions,
        output=arguments.output.resolve() if arguments.output is not None else None,
    )


def load_project_config(project: Path, env: str) -> ProjectConfig:
    """``conf/base`` merged with ``conf/<env>`` by the project's own config loader settings, then validated."""
    loader = CONFIG_LOADER_CLASS(conf_source=str(project / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return validate_parameters(loader["parameters"])


def _with(config: TrainingConfig, **changes: Any) -> TrainingConfig:
    """A copy of ``config`` with ``changes``, validated like any parameters file."""
    return TrainingConfig.model_validate({**config.model_dump(), **changes})


# ------------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class BenchLines:
    rows: pd.DataFrame
    """Manifest rows of the lines (all in the train split), after the training's CTC pre-flight."""
    store: LineImageStore
    charset: Charset
    ingested_lines: int
    ingestion_lines_per_second: float


def synthetic_line_data(data: DataConfig, lines: int) -> DataConfig:
    """The env's data settings with one synthetic source of ``lines`` train lines, ingested in one process.

    The env's own synthetic source (text, fonts, style) is kept when it has one, so line widths vary as they do
    in its data set.
    """
    configured = next((source for source in data.sources if isinstance(source, SyntheticSource)), None)
    source_settings = configured.model_dump() if configured is not None else {"kind": SyntheticSource.kind_name()}
    source = SyntheticSource.model_validate(
        {**source_settings, "lines_per_split": SplitCounts(train=lines, valid=0, test=0).model_dump()}
    )
    return DataConfig.model_validate({**data.model_dump(), "sources": [source.model_dump()], "num_workers": 1})


def ingest_bench_lines(data: DataConfig, training: TrainingConfig, lines: int, folder: Path) -> BenchLines:
    """Render, degrade and normalise ``lines`` lines into ``folder`` with the ingestion library; time that part."""
    bench_data = synthetic_line_data(data, lines)
    candidates = read_sources(bench_data).candidates
    started = time.perf_counter()
    samples, _ = materialise_all(candidates, bench_data)
    ingestion_seconds = time.perf_counter() - started
    manifest = manifest_table(samples)
    FileFolderDataset(filepath=str(folder)).save(image_files(samples))
    # The same pre-flight as training: a line whose text cannot fit its CTC time steps is left out.
    rows = line_splits(manifest, _with(training, drop_infeasible=True)).train
    return BenchLines(
        rows=rows,
        store=LineImageStore(folder),
        charset=Charset.from_texts(manifest["transcription"]),
        ingested_lines=len(samples),
        ingestion_lines_per_second=len(samples) / ingestion_seconds,
    )


def fresh_recognizer_state(config: TrainingConfig, charset: Charset) -> RecognizerCheckpoint:
    """A freshly initialised recognizer as the checkpoint ``load_recognizer`` reads."""
    recognizer = build_recognizer(config.recognizer, charset.num_classes)
    return RecognizerCheckpoint(recognizer.state_dict(), config.recognizer, charset)


# ----------------------------------------------------------------------------------------------------- rungs


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder: a way of training, and what it changes over the rung before (in words)."""

    name: str
    change: str
    config: TrainingConfig
    full_width: bool
    """Every line padded to ``data.max_width`` in random order (the previous system's way), or width-bucketed
    batches."""
    loader_workers: int
    loader_workers_from: str
    pin_memory: bool
    batch_size_from: str


def rung_loader(rung: Rung, lines: BenchLines, max_width: int) -> DataLoader:
    """The rung's DataLoader. Only whole batches: a short last batch would be one more shape to autotune."""
    dataset = LinePairDataset(lines.rows, lines.store, lines.charset, encode_labels=True)
    batch_size = rung.config.batch_size
    multiple = width_multiple(rung.config)
    if rung.full_width:
        # Every batch is padded to this width: the smallest the models accept that holds the widest line.
        full_width = math.ceil(max_width / multiple) * multiple
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(rung.config.seed),
            collate_fn=partial(collate_line_pairs, width_multiple=full_width),
            num_workers=rung.loader_workers,
            pin_memory=rung.pin_memory,
        )
    sampler = WidthBucketBatchSampler(dataset.widths, batch_size, seed=rung.config.seed, min_lines=batch_size)
    return line_batch_loader(dataset, sampler, multiple, num_workers=rung.loader_workers, pin_memory=rung.pin_memory)


def default_loader_workers(config: TrainingConfig) -> tuple[int, str]:
    if config.num_workers > 0:
        return config.num_workers, "training.num_workers"
    workers = max(0, min(MAX_DEFAULT_LOADER_WORKERS, (os.cpu_count() or 1) - 1))
    return workers, f"min({MAX_DEFAULT_LOADER_WORKERS}, cpu_count - 1), as training.num_workers is 0"


def ladder(
    training: TrainingConfig, device: torch.device, largest_batch: tuple[int, str], bench: BenchSettings
) -> list[Rung]:
    """The rungs in order, each the one before with one change (the last only when a speed setting is on)."""
    on_cuda = device.type == "cuda"
    previous_system = Rung(
        name="previous_system",
        change="the previous system's way: fp32, batch 2, random order, every line padded to data.max_width, no "
        "loader worker",
        config=_with(
            training,
            precision="fp32",
            batch_size=PREVIOUS_SYSTEM_BATCH_SIZE,
            num_workers=0,
            devices=1,
            speed=SpeedConfig(cudnn_benchmark=on_cuda).model_dump(),
        ),
        full_width=True,
        loader_workers=0,
        loader_workers_from="the previous system's way: loading in the training process, not overlapped with compute",
        pin_memory=False,
        batch_size_from="the previous system's batch",
    )
    buckets = replace(previous_system, name="width_buckets", change="width-bucketed batches", full_width=False)
    bf16 = replace(buckets, name="bf16", change="bf16 autocast", config=_with(buckets.config, precision="bf16"))
    batch_size, batch_size_from = largest_batch
    largest = replace(
        bf16,
        name="largest_batch",
        change=f"batch {batch_size}",
        config=_with(bf16.config, batch_size=batch_size),
        batch_size_from=batch_size_from,
    )
    workers, workers_from = default_loader_workers(training)
    loading = replace(
        largest,
        name="workers_and_pinning",
        change=f"{workers} loader worker(s)" + (", pinned memory" if on_cuda else ""),
        config=_with(largest.config, num_workers=workers),
        loader_workers=workers,
        loader_workers_from=workers_from,
        pin_memory=on_cuda,
    )
    rungs = [previous_system, buckets, bf16, largest, loading]
    speed = {**training.speed.model_dump(), **bench.speed_changes}
    chosen = [setting for setting in ("channels_last", "compile") if speed[setting]]
    if chosen:
        speed["cudnn_benchmark"] = on_cuda and not speed["deterministic"]
        rungs.append(
            replace(
                loading, name="speed_settings", change=" + ".join(chosen), config=_with(loading.config, speed=speed)
            )
        )
    return rungs


# ------------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class WindowTiming:
    seconds: float
    steps: int
    samples: int
    padded_columns: int
    """Sum over the window's batches of batch size x padded width: the image columns the models computed."""
    line_columns: int
    """The same without the padding."""

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds


def endless_batches(loader: DataLoader) -> Iterator[LineBatch]:
    """Batches epoch after epoch, each epoch in a new order (bucketed loaders are told the epoch, as in training)."""
    epoch = 0
    while True:
        epoch += 1
        if isinstance(loader.batch_sampler, WidthBucketBatchSampler):
            loader.batch_sampler.set_epoch(epoch)
        yield from loader


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory(device: torch.device) -> None:
    """Free what the last path left (models, loader workers), so the next path's peaks are its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``), so each path's peak is its own; False where not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident memory of this process (not of loader workers) since the last :func:`reset_peak_rss`."""
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def autotunes(config: TrainingConfig, device: torch.device) -> bool:
    """Whether the first step of each new batch shape costs more than the next ones: cuDNN times its algorithms
    per shape, ``compile`` compiles a graph per shape."""
    return (device.type == "cuda" and torch.backends.cudnn.benchmark) or config.speed.compile


def shape_warmup_batches(rung: Rung, lines: BenchLines) -> list[list[int]]:
    """For a width-bucketed rung, one batch (line indices) for every padded width a whole batch can have, so that
    every shape its windows meet has been seen: the widest line of a batch sets its width, the lines below it fill
    it (a width with fewer lines below it than a batch holds is never a batch's)."""
    batch_size = rung.config.batch_size
    multiple = width_multiple(rung.config)
    widths = lines.rows["width"].astype(int).tolist()
    by_width = sorted(range(len(widths)), key=lambda index: widths[index])
    padded = [math.ceil(widths[index] / multiple) * multiple for index in by_width]
    batches = []
    for position, padded_width in enumerate(padded):
        widest_of_its_padded_width = position + 1 == len(padded) or padded[position + 1] != padded_width
        if widest_of_its_padded_width and position + 1 >= batch_size:
            batches.append(by_width[position + 1 - batch_size : position + 1])
    return batches


def warm_up(
    trainer: GanTrainer, rung: Rung, lines: BenchLines, batches: Iterator[LineBatch], bench: BenchSettings
) -> dict[str, int]:
    """``--warmup-steps`` steps; then, where the first step of a shape costs more (autotuning, compiling), one
    step of every shape the windows can meet."""
    device = trainer.device
    for _ in range(bench.warmup_steps):
        trainer.train_step(next(batches).to(device), CTC_FACTOR, EpochSums())
    shapes = 0
    if autotunes(rung.config, device):
        if rung.full_width:  # one shape: every batch is padded to the full width
            trainer.train_step(next(batches).to(device), CTC_FACTOR, EpochSums())
            shapes = 1
        else:
            dataset = LinePairDataset(lines.rows, lines.store, lines.charset, encode_labels=True)
            for indices in shape_warmup_batches(rung, lines):
                batch = collate_line_pairs([dataset[index] for index in indices], width_multiple(rung.config))
                trainer.train_step(batch.to(device), CTC_FACTOR, EpochSums())
                shapes += 1
    synchronise(device)
    return {"warmup_steps": bench.warmup_steps, "warmup_shapes": shapes}


def timed_windows(
    trainer: GanTrainer, batches: Iterator[LineBatch], bench: BenchSettings, description: str
) -> list[WindowTiming]:
    """``--windows`` windows, each running steps until ``--window-seconds`` have passed on the host, then waiting
    for the device: every step a window counts has finished inside its time, which includes fetching its batches."""
    device = trainer.device
    sums = EpochSums()
    timings = []
    for _ in tqdm(range(bench.windows), desc=description, unit="window", leave=False):
        steps = samples = padded_columns = line_columns = 0
        synchronise(device)
        started = time.perf_counter()
        while time.perf_counter() - started < bench.window_seconds:
            batch = next(batches)
            trainer.train_step(batch.to(device), CTC_FACTOR, sums)
            steps += 1
            samples += len(batch.sample_ids)
            padded_columns += batch.degraded.shape[0] * batch.degraded.shape[-1]
            line_columns += int(batch.host_widths.sum())
        synchronise(device)
        timings.append(WindowTiming(time.perf_counter() - started, steps, samples, padded_columns, line_columns))
    return timings


def count_step_flops(trainer: GanTrainer, batch: LineBatch) -> int:
    """FLOPs of one whole training step (discriminator and generator updates) on ``batch``."""
    # Compiled kernels bypass the counter; the maths, and so the count, is the same run eagerly.
    if trainer.config.speed.compile and not hasattr(torch.compiler, "set_stance"):
        raise RuntimeError("counting FLOPs of a compiled model needs torch>=2.6 (torch.compiler.set_stance)")
    eager = torch.compiler.set_stance("force_eager") if trainer.config.speed.compile else contextlib.nullcontext()
    with eager, FlopCounterMode(display=False) as counter:
        trainer.train_step(batch, CTC_FACTOR, EpochSums())
    return int(counter.get_total_flops())


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def model_parameter_counts(models: GanModels) -> dict[str, int]:
    return {
        "generator": parameter_count(models.generator),
        "discriminator": parameter_count(models.discriminator),
        "recognizer": parameter_count(models.recognizer),
    }


def fresh_trainer(
    rung: Rung, recognizer_state: RecognizerCheckpoint, charset: Charset, device: torch.device
) -> GanTrainer:
    """The rung's models, built as ``gan_stage`` builds them, in training mode, from the rung's seed."""
    configure_cuda(device, rung.config.speed, cudnn_benchmark=rung.config.speed.cudnn_benchmark)
    seed_everything(rung.config.seed)
    models = build_gan_models(recognizer_state, charset, rung.config, device)
    trainer = GanTrainer(models, charset, rung.config, device)
    models.generator.train()
    models.discriminator.train()
    models.recognizer.train(rung.config.recognizer_during_gan == "fine_tune")
    return trainer


def largest_batch_that_fits(
    rung: Rung,
    configured_batch_size: int,
    lines: BenchLines,
    recognizer_state: RecognizerCheckpoint,
    device: torch.device,
    bench: BenchSettings,
) -> tuple[int, str]:
    """On CUDA, the largest power of two up to ``--max-batch-size`` (and the lines there are) whose batch of the
    widest lines trains two steps (the second holds the optimisers' state) without running out of memory. Off
    CUDA, ``--batch-size`` or ``training.batch_size``: a CPU's memory is not probed."""
    if device.type != "cuda":
        if bench.batch_size is not None:
            return bench.batch_size, "--batch-size"
        return configured_batch_size, "training.batch_size (memory is only probed on CUDA)"
    dataset = LinePairDataset(lines.rows, lines.store, lines.charset, encode_labels=True)
    widest_first = lines.rows["width"].astype(int).reset_index(drop=True).sort_values(ascending=False).index.tolist()
    limit = min(bench.max_batch_size, len(widest_first))
    candidates = [size for size in (2**power for power in range(1, 16)) if size <= limit] or [limit]
    fitting = None
    for size in tqdm(candidates, desc="largest batch", unit="size", leave=False):
        trial = replace(rung, config=_with(rung.config, batch_size=size))
        batch = collate_line_pairs([dataset[index] for index in widest_first[:size]], width_multiple(trial.config))
        try:
            trainer = fresh_trainer(trial, recognizer_state, lines.charset, device)
            for _ in range(2):
                trainer.train_step(batch.to(device), CTC_FACTOR, EpochSums())
            synchronise(device)
            fitting = size
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            trainer = None
            release_memory(device)
    if fitting is None:
        raise RuntimeError(f"a batch of {candidates[0]} of the widest lines does not fit on {device}")
    return fitting, f"the largest power of two up to {limit} that trains at the widest line without running out"


def measure_rung(
    rung: Rung,
    lines: BenchLines,
    recognizer_state: RecognizerCheckpoint,
    device: torch.device,
    bench: BenchSettings,
    max_width: int,
    peak: DevicePeak,
) -> dict[str, Any]:
    """Warm the rung up, time its windows; its speed, FLOPs, MFU and peak memory."""
    rss_reset = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = fresh_trainer(rung, recognizer_state, lines.charset, device)
    loader = rung_loader(rung, lines, max_width)
    batches = endless_batches(loader)
    warmup = warm_up(trainer, rung, lines, batches, bench)
    timings = timed_windows(trainer, batches, bench, f"{rung.name} ({rung.config.precision})")
    flop_batch = next(batches)
    step_flops = count_step_flops(trainer, flop_batch.to(device))
    # Work grows with the image columns computed (convs per pixel, the LSTM per time step), so the FLOPs
    # counted on one batch scale to each window by its padded columns; bucketed batches differ in width.
    flops_per_padded_column = step_flops / (flop_batch.degraded.shape[0] * flop_batch.degraded.shape[-1])
    gpu_peak_mib = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    rss_peak_mib = peak_rss_mib()
    batches.close()
    parameters = model_parameter_counts(trainer.models)
    padded_columns = sum(window.padded_columns for window in timings)
    tflop_per_second = statistics.median(
        flops_per_padded_column * window.padded_columns / window.seconds / 1e12 for window in timings
    )
    return {
        "name": rung.name,
        "change": rung.change,
        "precision": rung.config.precision,
        "dtype": PRECISION_DTYPES[rung.config.precision],
        "batch_size": rung.config.batch_size,
        "batch_size_from": rung.batch_size_from,
        "batching": "random order, every line padded to data.max_width"
        if rung.full_width
        else f"width buckets, padded to the batch's widest line (multiple of {width_multiple(rung.config)} px)",
        "loader_workers": rung.loader_workers,
        "loader_workers_from": rung.loader_workers_from,
        "pin_memory": bool(loader.pin_memory),
        "speed": rung.config.speed.model_dump(),
        "cudnn_benchmark": device.type == "cuda" and torch.backends.cudnn.benchmark,
        **warmup,
        "samples_per_second": statistics.median(window.samples_per_second for window in timings),
        "step_seconds": statistics.median(window.seconds / window.steps for window in timings),
        "padding_share": 1 - sum(window.line_columns for window in timings) / padded_columns,
        "flops_per_step_counted": step_flops,
        "flops_counted_on_batch_shape": list(flop_batch.degraded.shape),
        "tflop_per_second": tflop_per_second,
        "mfu_of_bf16_dense_peak": None if peak.bf16_dense_tflops is None else tflop_per_second / peak.bf16_dense_tflops,
        "gpu_peak_memory_mib": gpu_peak_mib,
        "cpu_rss_peak_mib": rss_peak_mib,
        "cpu_rss_peak_is_this_rung_only": rss_reset,
        "model_parameters": parameters,
        "windows": [{**asdict(window), "samples_per_second": window.samples_per_second} for window in timings],
    }


def measure_evaluation(
    config: ProjectConfig,
    lines: BenchLines,
    recognizer_state: RecognizerCheckpoint,
    device: torch.device,
    bench: BenchSettings,
) -> dict[str, Any]:
    """Lines/s of the evaluation library scoring lines with a generator and the recognizer, as evaluation does."""
    training = config.training
    generator = build_generator(training.generator).to(device)
    recognizer = load_recognizer(
        recognizer_state, lines.charset, training.recognizer, Path("recognizer_checkpoint")
    ).to(device)
    rows = lines.rows.head(bench.eval_lines)
    dataset = LinePairDataset(rows, lines.store, lines.charset, encode_labels=False)
    # Batched as the evaluation pipeline batches: in width order, padded to what both models accept.
    multiple = padded_width_multiple(recognizer.width_downsampling, generator.size_multiple)
    sampler = WidthBucketBatchSampler(dataset.widths, config.evaluation.batch_size, seed=0, shuffle=False)
    loader = line_batch_loader(dataset, sampler, multiple)
    rss_reset = reset_peak_rss()
    lines_per_second = []
    for _ in tqdm(range(bench.eval_repetitions), desc="evaluation scoring", unit="pass", leave=False):
        synchronise(device)
        started = time.perf_counter()
        scored = score_samples(loader, generator, recognizer, lines.charset, device, EVALUATION_PRECISION)
        synchronise(device)
        lines_per_second.append(len(scored) / (time.perf_counter() - started))
    return {
        "lines_per_second": statistics.median(lines_per_second),
        "repetitions_lines_per_second": lines_per_second,
        "lines": len(rows),
        "batch_size": config.evaluation.batch_size,
        "precision": EVALUATION_PRECISION,
        "cpu_rss_peak_mib": peak_rss_mib(),
        "cpu_rss_peak_is_evaluation_only": rss_reset,
    }


# ------------------------------------------------------------------------------------------------ the report


def git_output(project: Path, *arguments: str) -> str | None:
    """What a git command prints in ``project``; ``None`` outside a git checkout or without git."""
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=project, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def numerics() -> dict[str, Any]:
    """The settings an fp32 figure on CUDA depends on: whether cuDNN and matrix products may use TF32."""
    return {
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def environment(project: Path, device: torch.device) -> dict[str, Any]:
    git_status = git_output(project, "status", "--porcelain", "--untracked-files=no")
    return {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_output(project, "rev-parse", "HEAD") or None,
        "git_tracked_files_modified": None if git_status is None else bool(git_status),
        **numerics(),
    }


def results_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"GAN training ladder, env {report['env']}, {report['environment']['device_name']}")
    for column in ("rung", "change", "batch", "samples/s", "x previous", "TFLOP/s", "MFU", "GPU peak MiB"):
        table.add_column(column, justify="left" if column in ("rung", "change") else "right")
    previous = None
    for rung in report["ladder"]:
        speed_up = "" if previous is None else f"{rung['samples_per_second'] / previous:.2f}x"
        mfu = rung["mfu_of_bf16_dense_peak"]
        gpu = rung["gpu_peak_memory_mib"]
        table.add_row(
            rung["name"],
            rung["change"],
            str(rung["batch_size"]),
            f"{rung['samples_per_second']:.3f}",
            speed_up,
            f"{rung['tflop_per_second']:.3g}",
            "-" if mfu is None else f"{mfu:.1%}",
            "-" if gpu is None else f"{gpu:,.0f}",
        )
        previous = rung["samples_per_second"]
    peak = report["peak"]
    table.caption = (
        f"last/previous system {report['last_over_previous_system_samples_per_second']:.2f}x; "
        f"MFU against {peak['reason']}; "
        f"evaluation {report['evaluation']['lines_per_second']:.2f} lines/s; "
        f"ingestion {report['ingestion']['lines_per_second']:.2f} lines/s (one process); "
        f"{report['data']['image_height']} x {report['data']['max_width']} px lines"
    )
    return table


def default_output(project: Path, env: str, created: datetime) -> Path:
    return project / BENCHMARK_FOLDER / f"bench_{env}_{created.strftime('%Y%m%dT%H%M%SZ')}.json"


def run_benchmark(bench: BenchSettings) -> dict[str, Any]:
    """Everything measured, as the JSON report holds it."""
    created = datetime.now(UTC)
    config = load_project_config(bench.project, bench.env)
    training = config.training
    device = resolve_device(bench.device or training.device, "--device" if bench.device else "training.device")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    peak = bf16_dense_peak(device_name, device.type)
    with tempfile.TemporaryDirectory(prefix="htr_bench_") as folder:
        lines = ingest_bench_lines(config.data, training, bench.lines, Path(folder))
        if len(lines.rows) < PREVIOUS_SYSTEM_BATCH_SIZE:
            raise ValueError(
                f"{len(lines.rows)} usable lines are fewer than a batch ({PREVIOUS_SYSTEM_BATCH_SIZE}); raise --lines"
            )
        seed_everything(training.seed)
        recognizer_state = fresh_recognizer_state(training, lines.charset)
        provisional = ladder(training, device, (PREVIOUS_SYSTEM_BATCH_SIZE, ""), bench)
        largest = largest_batch_that_fits(provisional[2], training.batch_size, lines, recognizer_state, device, bench)
        if len(lines.rows) < largest[0]:
            raise ValueError(f"{len(lines.rows)} usable lines are fewer than a batch ({largest[0]}); raise --lines")
        measured = []
        for rung in ladder(training, device, largest, bench):
            measured.append(measure_rung(rung, lines, recognizer_state, device, bench, config.data.max_width, peak))
            release_memory(device)
        evaluation = measure_evaluation(config, lines, recognizer_state, device, bench)
        widths = lines.rows["width"]
        data = {
            "image_height": config.data.image_height,
            "max_width": config.data.max_width,
            "lines": len(lines.rows),
            "charset_symbols": len(lines.charset.symbols),
            "width_px_mean": float(widths.mean()),
            "width_px_min": int(widths.min()),
            "width_px_max": int(widths.max()),
        }
    return {
        "env": bench.env,
        "created_utc": created.isoformat(),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(bench).items()},
        "environment": environment(bench.project, device),
        "peak": asdict(peak),
        "data": data,
        "configured": {
            f"training.{key}": value
            for key, value in training.model_dump(mode="json").items()
            if key in ("device", "precision", "batch_size", "num_workers", "devices", "speed")
        },
        "ladder": measured,
        "last_over_previous_system_samples_per_second": measured[-1]["samples_per_second"]
        / measured[0]["samples_per_second"],
        "evaluation": evaluation,
        "ingestion": {
            "lines_per_second": lines.ingestion_lines_per_second,
            "lines": lines.ingested_lines,
            "processes": 1,
        },
    }


def main(argv: Sequence[str] | None = None) -> Path:
    """Measure, print the table, write the JSON report; return its path."""
    bench = parse_arguments(argv)
    # Relative paths in the parameters (text files, fonts, data) are relative to the project, as under kedro run.
    with contextlib.chdir(bench.project):
        report = run_benchmark(bench)
    output = bench.output or default_output(bench.project, bench.env, datetime.fromisoformat(report["created_utc"]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    console = Console()
    console.print(results_table(report))
    console.print(f"report: {output}")
    return output


if __name__ == "__main__":
    main()
