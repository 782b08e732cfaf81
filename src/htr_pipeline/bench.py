"""Training throughput, side by side in one process: the seed system's way against this project's training path.

    python -m htr_pipeline.bench --env seed [--batch-size N] [--precision fp32|bf16|fp16] [--device auto|cpu|cuda]
        [--[no-]channels-last] [--[no-]compile] [--lines N] [--warmup-steps N] [--windows N] [--steps-per-window N]
        [--eval-lines N] [--eval-repetitions N] [--output PATH] [--project PATH]

(a) ``seed_way``: what the seed run did: fp32, batch 2, every line padded to the full ``data.max_width``, lines in
random order, loaded in the training process (``num_workers=0``, so loading is not overlapped with compute).
(b) ``fast_path``: the project's own training path as ``gan_stage`` runs it: ``line_loader`` (width-bucketed
batches, loader workers, pinned memory and non-blocking copies on CUDA), ``build_gan_models`` and
``GanTrainer.train_step``, at the chosen precision and batch size, with the env's ``training.speed`` settings
(``--[no-]channels-last``, ``--[no-]compile`` change them) and cuDNN benchmarking on CUDA. Both paths run in one
process: ``training.devices`` (data-parallel processes) is not measured here.

Both paths train the same models, built from the env's parameters, on the same synthetic lines, rendered and
degraded in-process by the ingestion library at the env's image height and maximum width. The recognizer is
freshly initialised: speed does not depend on its weights. Each path runs warm-up steps, then ``--windows``
timed windows of ``--steps-per-window`` steps; a window's time includes loading its batches, and the device is
synchronised at window boundaries only. Figures are medians over windows.

Also measured: evaluation lines/s (the evaluation library's scoring with generator and recognizer), ingestion
lines/s (render + degrade + normalise, one process), peak memory, and achieved FLOP/s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
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

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import RecognizerCheckpoint
from htr_pipeline.config import (
    PRECISIONS,
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
from htr_pipeline.datasets.line_image_store import LineImageStoreDataset
from htr_pipeline.devices import resolve_device
from htr_pipeline.evaluation.scoring import score_samples
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.progress import tqdm
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS
from htr_pipeline.training.data_loading import line_loader, width_multiple
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer
from htr_pipeline.training.runtime import seed_everything
from htr_pipeline.training.stages import build_gan_models, line_splits, load_recognizer

SEED_WAY_BATCH_SIZE = 2
SEED_WAY_PRECISION: Precision = "fp32"
MAX_DEFAULT_LOADER_WORKERS = 4
CTC_FACTOR = 1.0
"""Steps run with the full CTC term, as after any CTC warm-up: the schedule changes the weight, not the work."""
EVALUATION_PRECISION: Precision = "fp32"
"""The evaluation pipeline scores in fp32 (``evaluate_split`` leaves ``score_samples`` at its default)."""
MIB = 2**20
BENCHMARK_FOLDER = Path("data") / "09_benchmarks"
PRECISION_DTYPES = {"fp32": "float32", "bf16": "bfloat16 autocast", "fp16": "float16 autocast + GradScaler"}


@dataclass(frozen=True)
class BenchSettings:
    """The command line, resolved: what a run measures and where its report goes."""

    project: Path
    env: str
    device: str | None
    precision: Precision | None
    batch_size: int | None
    speed_changes: dict[str, bool]
    """``training.speed`` settings the command line changes for the fast path."""
    lines: int
    warmup_steps: int
    windows: int
    steps_per_window: int
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
    parser.add_argument("--precision", choices=PRECISIONS, help="fast path; default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch-size", type=int, help="fast path; default: training.batch_size")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="fast path; default: training.speed.channels_last",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="fast path; default: training.speed.compile (compiling takes more --warmup-steps)",
    )
    parser.add_argument("--lines", type=int, default=64, help="synthetic lines to train on")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps-per-window", type=int, default=5)
    parser.add_argument("--eval-lines", type=int, default=32, help="lines the evaluation scoring reads")
    parser.add_argument("--eval-repetitions", type=int, default=3)
    parser.add_argument("--output", type=Path, help="JSON report; default data/09_benchmarks/bench_<env>_<UTC>.json")
    arguments = parser.parse_args(argv)
    for name in ("lines", "windows", "steps_per_window", "eval_lines", "eval_repetitions"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.warmup_steps < 0 or (arguments.batch_size is not None and arguments.batch_size < 1):
        parser.error("--warmup-steps must be >= 0 and --batch-size >= 1")
    return BenchSettings(
        project=arguments.project.resolve(),
        env=arguments.env,
        device=arguments.device,
        precision=arguments.precision,
        batch_size=arguments.batch_size,
        speed_changes={
            setting: value
            for setting in ("channels_last", "compile")
            if (value := getattr(arguments, setting)) is not None
        },
        lines=arguments.lines,
        warmup_steps=arguments.warmup_steps,
        windows=arguments.windows,
        steps_per_window=arguments.steps_per_window,
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
    LineImageStoreDataset(filepath=str(folder)).save(image_files(samples))
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


# ----------------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class TrainingPath:
    """One way of training: its config, its loader, and how the loader was set up (in words, for the report)."""

    name: str
    config: TrainingConfig
    loader: DataLoader
    loader_workers: int
    loader_workers_from: str
    batching: str


def seed_way_path(config: TrainingConfig, lines: BenchLines, max_width: int) -> TrainingPath:
    """fp32, batch 2, random order, every line padded to ``max_width``, loaded in the training process; one
    process, no speed settings."""
    seed_config = _with(
        config,
        precision=SEED_WAY_PRECISION,
        batch_size=SEED_WAY_BATCH_SIZE,
        num_workers=0,
        devices=1,
        speed=SpeedConfig().model_dump(),
    )
    multiple = width_multiple(seed_config)
    # Every batch is padded to this width: the smallest the models accept that holds the widest line.
    full_width = math.ceil(max_width / multiple) * multiple
    dataset = LinePairDataset(lines.rows, lines.store, lines.charset, encode_labels=True)
    loader = DataLoader(
        dataset,
        batch_size=SEED_WAY_BATCH_SIZE,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
        collate_fn=partial(collate_line_pairs, width_multiple=full_width),
        num_workers=0,
    )
    return TrainingPath(
        name="seed_way",
        config=seed_config,
        loader=loader,
        loader_workers=0,
        loader_workers_from="the seed's way: loading in the training process, not overlapped with compute",
        batching=f"random order, every line padded to {full_width} px",
    )


def fast_path(
    config: TrainingConfig,
    lines: BenchLines,
    device: torch.device,
    batch_size: int | None,
    precision: Precision | None,
    speed_changes: dict[str, bool],
) -> TrainingPath:
    """The training path as ``gan_stage`` runs it in one process, with loader workers even where the env sets
    none, and ``training.speed`` as configured, changed by ``speed_changes``; cuDNN benchmarking on CUDA."""
    if config.num_workers > 0:
        workers, workers_from = config.num_workers, "training.num_workers"
    else:
        workers = max(0, min(MAX_DEFAULT_LOADER_WORKERS, (os.cpu_count() or 1) - 1))
        workers_from = f"min({MAX_DEFAULT_LOADER_WORKERS}, cpu_count - 1), as training.num_workers is 0"
    chosen_precision = precision or ("bf16" if device.type == "cuda" else "fp32")
    speed = {**config.speed.model_dump(), **speed_changes}
    speed["cudnn_benchmark"] = speed["cudnn_benchmark"] or device.type == "cuda"
    fast_config = _with(
        config,
        precision=chosen_precision,
        batch_size=batch_size or config.batch_size,
        num_workers=workers,
        devices=1,
        speed=speed,
    )
    loader = line_loader(
        lines.rows, lines.store, lines.charset, fast_config, fast_config.batch_size, training=True, device=device
    )
    return TrainingPath(
        name="fast_path",
        config=fast_config,
        loader=loader,
        loader_workers=workers,
        loader_workers_from=workers_from,
        batching=f"width buckets, padded to the batch's widest line (multiple of {width_multiple(fast_config)} px)",
    )


# ------------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class WindowTiming:
    seconds: float
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


def timed_windows(
    trainer: GanTrainer,
    batches: Iterator[LineBatch],
    device: torch.device,
    bench: BenchSettings,
    description: str,
) -> list[WindowTiming]:
    """Warm-up steps, then timed windows; a window includes fetching its batches, which is the loader's share."""
    total_steps = bench.warmup_steps + bench.windows * bench.steps_per_window
    progress = tqdm(total=total_steps, desc=description, unit="step", leave=False)
    sums = EpochSums()
    for _ in range(bench.warmup_steps):
        trainer.train_step(next(batches).to(device), CTC_FACTOR, sums)
        progress.update()
    timings = []
    for _ in range(bench.windows):
        samples = padded_columns = line_columns = 0
        synchronise(device)
        started = time.perf_counter()
        for _ in range(bench.steps_per_window):
            batch = next(batches)
            trainer.train_step(batch.to(device), CTC_FACTOR, sums)
            samples += len(batch.sample_ids)
            padded_columns += batch.degraded.shape[0] * batch.degraded.shape[-1]
            line_columns += int(batch.widths.sum())
            progress.update()
        synchronise(device)
        timings.append(WindowTiming(time.perf_counter() - started, samples, padded_columns, line_columns))
    progress.close()
    return timings


def count_step_flops(trainer: GanTrainer, batch: LineBatch) -> int:
    """FLOPs of one whole training step (discriminator and generator updates) on ``batch``."""
    # Compiled kernels bypass the counter; the maths, and so the count, is the same run eagerly.
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


def measure_training_path(
    path: TrainingPath,
    recognizer_state: RecognizerCheckpoint,
    charset: Charset,
    device: torch.device,
    bench: BenchSettings,
) -> dict[str, Any]:
    """Train ``path`` for the warm-up and timed windows; its speed, FLOPs and peak memory."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = path.config.speed.cudnn_benchmark
    seed_everything(path.config.seed)
    rss_reset = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    models = build_gan_models(recognizer_state, charset, path.config, device)
    trainer = GanTrainer(models, charset, path.config, device)
    models.generator.train()
    models.discriminator.train()
    models.recognizer.train(path.config.recognizer_during_gan == "fine_tune")
    batches = endless_batches(path.loader)
    timings = timed_windows(trainer, batches, device, bench, f"{path.name} ({path.config.precision})")
    flop_batch = next(batches)
    step_flops = count_step_flops(trainer, flop_batch.to(device))
    # Work grows with the image columns computed (convs per pixel, the LSTM per time step), so the FLOPs
    # counted on one batch scale to each window by its padded columns; bucketed batches differ in width.
    flops_per_padded_column = step_flops / (flop_batch.degraded.shape[0] * flop_batch.degraded.shape[-1])
    gpu_peak_mib = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    rss_peak_mib = peak_rss_mib()
    batches.close()
    parameters = model_parameter_counts(models)
    padded_columns = sum(window.padded_columns for window in timings)
    return {
        "precision": path.config.precision,
        "dtype": PRECISION_DTYPES[path.config.precision],
        "batch_size": path.config.batch_size,
        "batching": path.batching,
        "loader_workers": path.loader_workers,
        "loader_workers_from": path.loader_workers_from,
        "pin_memory": bool(path.loader.pin_memory),
        "speed": path.config.speed.model_dump(),
        "samples_per_second": statistics.median(window.samples_per_second for window in timings),
        "step_seconds": statistics.median(window.seconds / bench.steps_per_window for window in timings),
        "padding_share": 1 - sum(window.line_columns for window in timings) / padded_columns,
        "flops_per_step_counted": step_flops,
        "flops_counted_on_batch_shape": list(flop_batch.degraded.shape),
        "tflop_per_second": statistics.median(
            flops_per_padded_column * window.padded_columns / window.seconds / 1e12 for window in timings
        ),
        "gpu_peak_memory_mib": gpu_peak_mib,
        "cpu_rss_peak_mib": rss_peak_mib,
        "cpu_rss_peak_is_this_path_only": rss_reset,
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


def environment(project: Path, device: torch.device) -> dict[str, Any]:
    git_status = git_output(project, "status", "--porcelain", "--untracked-files=no")
    return {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_output(project, "rev-parse", "HEAD") or None,
        "git_tracked_files_modified": None if git_status is None else bool(git_status),
    }


def results_table(report: dict[str, Any]) -> Table:
    seed, fast = report["paths"]["seed_way"], report["paths"]["fast_path"]
    table = Table(title=f"GAN training, env {report['env']}, {report['environment']['device']}")
    table.add_column("")
    table.add_column("(a) seed way", justify="right")
    table.add_column("(b) fast path", justify="right")

    def memory(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    rows = [
        ("precision", seed["precision"], fast["precision"]),
        ("batch size", str(seed["batch_size"]), str(fast["batch_size"])),
        ("loader workers", str(seed["loader_workers"]), str(fast["loader_workers"])),
        ("padding share", f"{seed['padding_share']:.0%}", f"{fast['padding_share']:.0%}"),
        ("samples/s", f"{seed['samples_per_second']:.3f}", f"{fast['samples_per_second']:.3f}"),
        ("step seconds", f"{seed['step_seconds']:.3f}", f"{fast['step_seconds']:.3f}"),
        ("TFLOP/s", f"{seed['tflop_per_second']:.3g}", f"{fast['tflop_per_second']:.3g}"),
        ("CPU RSS peak MiB", memory(seed["cpu_rss_peak_mib"]), memory(fast["cpu_rss_peak_mib"])),
        ("GPU peak MiB", memory(seed["gpu_peak_memory_mib"]), memory(fast["gpu_peak_memory_mib"])),
        ("ratio fast/seed samples/s", "", f"{report['fast_over_seed_samples_per_second']:.2f}x"),
    ]
    for row in rows:
        table.add_row(*row)
    table.caption = (
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
    with tempfile.TemporaryDirectory(prefix="htr_bench_") as folder:
        lines = ingest_bench_lines(config.data, training, bench.lines, Path(folder))
        needed = max(SEED_WAY_BATCH_SIZE, bench.batch_size or training.batch_size)
        if len(lines.rows) < needed:
            raise ValueError(f"{len(lines.rows)} usable lines are fewer than a batch ({needed}); raise --lines")
        seed_everything(training.seed)
        recognizer_state = fresh_recognizer_state(training, lines.charset)
        # The fast path runs first, so that its loader workers are shut down before the seed's way starts.
        path_builders = [
            partial(fast_path, training, lines, device, bench.batch_size, bench.precision, bench.speed_changes),
            partial(seed_way_path, training, lines, config.data.max_width),
        ]
        measured = {}
        for build_path in path_builders:
            path = build_path()
            measured[path.name] = measure_training_path(path, recognizer_state, lines.charset, device, bench)
            del path
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
        "data": data,
        "configured": {
            f"training.{key}": value
            for key, value in training.model_dump(mode="json").items()
            if key in ("device", "precision", "batch_size", "num_workers", "devices", "speed")
        },
        "paths": {"seed_way": measured["seed_way"], "fast_path": measured["fast_path"]},
        "fast_over_seed_samples_per_second": measured["fast_path"]["samples_per_second"]
        / measured["seed_way"]["samples_per_second"],
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
