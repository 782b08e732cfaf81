"""One command that checks a GPU machine and writes one JSON report (``scripts/gpu_check.sh`` installs first).

    python -m htr_pipeline.gpu_check [--device cuda|cpu] [--project PATH] [--output PATH] [--bench-env ENV]
        [--bench-lines N] [--skip STEP ...]

Four steps, each timed and reported, none stopping the next; the command exits non-zero when any failed:

1. ``cuda_tests``: ``pytest -m cuda tests/cuda``: the GAN step in fp32, bf16 and fp16, the step's waits for the
   GPU, pinned batches, RNN dtypes, random states, deterministic mode, compile counts, NCCL (two GPUs), the
   benchmark with tiny models.
2. ``benchmark``: the ablation ladder of :mod:`htr_pipeline.bench` at seed scale (``--bench-env seed``).
3. ``end_to_end``: a tiny ``kedro run`` (ingestion, both training stages, evaluation) on ``--device``, in a
   throw-away copy of the project's configuration, with ``training.speed.deterministic`` on.
4. ``resume``: one epoch, then a resume from its ``last.pt`` to the second epoch; its metrics must equal those
   of the end-to-end run's two epochs straight.

``--device cpu`` runs the same plumbing on a machine without a GPU (the CUDA tests are then skipped, with the
reason): a smoke test of the command itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from htr_pipeline import bench

STEPS = ("cuda_tests", "benchmark", "end_to_end", "resume")
REPORT_FOLDER = Path("data") / "09_benchmarks"
KEDRO_RUN_TIMEOUT_S = 600
CUDA_TESTS_TIMEOUT_S = 600
EPOCHS = 2

TINY_PARAMETERS: dict[str, Any] = {
    "data": {
        "seed": 7,
        # conf/base's embedded default source (synthetic lines), made smaller
        "sources": [{"lines_per_split": {"train": 32, "valid": 8, "test": 8}, "line_chars": [6, 16]}],
        "image_height": 32,
        "max_width": 256,
        "num_workers": 1,
    },
    "training": {
        "seed": 3,
        "epochs": EPOCHS,
        "batch_size": 4,
        "num_workers": 1,
        "precision": "bf16",
        "speed": {"deterministic": True},
        "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 2},
        "generator": {"variant": "unet", "channels": [8, 16]},
        "discriminator": {"variant": "dual_modal", "channels": [8, 16], "text_embedding_dim": 8},
        # Two epochs cannot teach a recognizer to read: the gate is opened, the plumbing is what is checked.
        "recognizer_pretraining": {"epochs": 2, "batch_size": 8, "patience": 2, "max_val_cer": 10.0},
        "judge": {
            "seed": 11,
            "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 12, "lstm_layers": 1},
        },
        "early_stopping": None,
    },
    "evaluation": {},
    "diagnostics": {},
}
"""The end-to-end run's parameters: tiny models on 48 synthetic lines, every part of the pipeline exercised (a
two-layer BiLSTM, the dual-modal discriminator's GRU, bf16, loader workers, deterministic mode)."""


@dataclass(frozen=True)
class CheckSettings:
    project: Path
    device: str
    output: Path | None
    bench_env: str
    bench_lines: int
    tests: Path
    skip: tuple[str, ...]


def parse_arguments(argv: Sequence[str] | None = None) -> CheckSettings:
    parser = argparse.ArgumentParser(prog="python -m htr_pipeline.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project's folder (holds conf/)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--output", type=Path, help="default: data/09_benchmarks/gpu_check_<UTC>.json")
    parser.add_argument("--bench-env", default="seed", help="the benchmark's config env (default: %(default)s)")
    parser.add_argument("--bench-lines", type=int, default=64, help="synthetic lines the benchmark trains on")
    parser.add_argument("--tests", type=Path, help="the CUDA tests (default: <project>/tests/cuda)")
    parser.add_argument("--skip", nargs="*", choices=STEPS, default=[], help="steps to leave out")
    arguments = parser.parse_args(argv)
    project = arguments.project.resolve()
    return CheckSettings(
        project=project,
        device=arguments.device,
        output=arguments.output.resolve() if arguments.output else None,
        bench_env=arguments.bench_env,
        bench_lines=arguments.bench_lines,
        tests=(arguments.tests or project / "tests" / "cuda").resolve(),
        skip=tuple(arguments.skip),
    )


# ------------------------------------------------------------------------------------------------- steps


def run_cuda_tests(settings: CheckSettings, work: Path) -> dict[str, Any]:
    """pytest on the CUDA tests; their counts, and each failure with its message."""
    junit = work / "cuda_tests.xml"
    command = [sys.executable, "-m", "pytest", str(settings.tests), "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider"]
    completed = subprocess.run(
        [*command, f"--junitxml={junit}"],
        cwd=settings.project,
        capture_output=True,
        text=True,
        timeout=CUDA_TESTS_TIMEOUT_S,
        env=_environment(),
    )
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no results (exit {completed.returncode}): {completed.stdout[-2000:]}")
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failures = [
        {"test": f"{case.get('classname')}::{case.get('name')}", "message": (problem.get("message") or "")[:500]}
        for case in suite.iter("testcase")
        for problem in [*case.findall("failure"), *case.findall("error")]
    ]
    skipped = sorted({(problem.get("message") or "") for problem in suite.iter("skipped")})
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    result = {
        **counts,
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "seconds": float(suite.get("time", 0.0)),
        "failed": failures,
        "skip_reasons": skipped,
        "summary": completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else "",
    }
    if completed.returncode not in (0, 5) or failures:  # 5: nothing collected
        raise CheckFailedError(f"{counts['failures'] + counts['errors']} CUDA test(s) failed", result)
    return result


def run_benchmark(settings: CheckSettings, work: Path) -> dict[str, Any]:
    """The ladder, in this process; its figures per rung and the path of its full report."""
    output = work / "bench.json"
    bench.main(
        [
            "--project",
            str(settings.project),
            "--env",
            settings.bench_env,
            "--device",
            settings.device,
            "--lines",
            str(settings.bench_lines),
            "--eval-lines",
            "16",
            "--output",
            str(output),
        ]
    )
    report = json.loads(output.read_text())
    return {
        "report": report,
        "ladder": [
            {
                key: rung[key]
                for key in (
                    "name",
                    "change",
                    "precision",
                    "batch_size",
                    "samples_per_second",
                    "tflop_per_second",
                    "mfu_of_bf16_dense_peak",
                    "gpu_peak_memory_mib",
                )
            }
            for rung in report["ladder"]
        ],
        "evaluation_lines_per_second": report["evaluation"]["lines_per_second"],
    }


def tiny_project(settings: CheckSettings, work: Path) -> Path:
    """A throw-away project: the real catalog and MLflow settings, the tiny parameters, on ``--device``."""
    project = work / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()
    shutil.copy(settings.project / "pyproject.toml", project / "pyproject.toml")
    for name in ("catalog.yml", "mlflow.yml"):
        shutil.copy(settings.project / "conf" / "base" / name, project / "conf" / "base" / name)
    parameters = json.loads(json.dumps(TINY_PARAMETERS))
    base = yaml.safe_load((settings.project / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))
    parameters["data"]["sources"] = [{**base["data"]["sources"][0], **parameters["data"]["sources"][0]}]
    parameters["training"]["device"] = settings.device
    parameters["evaluation"]["device"] = settings.device
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    for layer in ("01_raw", "03_primary", "08_reporting"):
        (project / "data" / layer).mkdir(parents=True)
    return project


def kedro_run(project: Path, *arguments: str) -> dict[str, Any]:
    """``kedro run`` in its own process, as a user runs it; its wall time."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "kedro", "run", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=KEDRO_RUN_TIMEOUT_S,
        env=_environment(),
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise CheckFailedError(
            f"kedro run {' '.join(arguments)} exited {completed.returncode}",
            {"output_tail": (completed.stdout + completed.stderr)[-4000:], "seconds": seconds},
        )
    return {"arguments": list(arguments), "seconds": seconds}


def newest_training_summary(project: Path) -> dict[str, Any]:
    summaries = sorted((project / "data" / "08_reporting" / "training_summary.json").glob("*/training_summary.json"))
    if not summaries:
        raise RuntimeError(f"no training summary under {project / 'data' / '08_reporting'}")
    return json.loads(summaries[-1].read_text())


def run_end_to_end(project: Path) -> dict[str, Any]:
    run = kedro_run(project)
    summary = newest_training_summary(project)
    evaluations = sorted((project / "data" / "08_reporting" / "evaluation_summary.json").glob("*/*.json"))
    return {
        **run,
        "epochs_run": summary["epochs_run"],
        "final_metrics": summary["final_metrics"],
        "evaluation_summary": json.loads(evaluations[-1].read_text()) if evaluations else None,
    }


def run_resume(project: Path, straight: dict[str, Any]) -> dict[str, Any]:
    first = kedro_run(project, "--pipelines=training", "--params=training.epochs=1")
    last = Path(newest_training_summary(project)["checkpoint_folder"]) / "last.pt"
    resumed = kedro_run(project, "--pipelines=training", f"--params=training.resume_from={last}")
    summary = newest_training_summary(project)
    metrics = {name: summary["final_metrics"][name] for name in summary["final_metrics"] if name.startswith("val/")}
    expected = {name: straight["final_metrics"][name] for name in metrics}
    result = {
        "runs": [first, resumed],
        "epochs_run": summary["epochs_run"],
        "resumed_val_metrics": metrics,
        "straight_val_metrics": expected,
        "equal": metrics == expected,
    }
    if summary["epochs_run"] != EPOCHS or metrics != expected:
        raise CheckFailedError("the resumed run's validation metrics differ from two epochs straight", result)
    return result


# ---------------------------------------------------------------------------------------------- the check


class CheckFailedError(RuntimeError):
    """A step ran and found a problem; ``details`` are reported with it."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


def timed_step(name: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"gpu_check: {name} ...", flush=True)
    started = time.perf_counter()
    try:
        result = {"ok": True, **action()}
    except CheckFailedError as failure:
        result = {"ok": False, "error": str(failure), **failure.details}
    except Exception as error:  # every step is reported, and the next one still runs
        result = {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-4000:]}
    result["step_seconds"] = time.perf_counter() - started
    print(f"gpu_check: {name} {'ok' if result['ok'] else 'FAILED: ' + result['error']}", flush=True)
    return result


def device_description(device: str) -> dict[str, Any]:
    if device != "cuda" or not torch.cuda.is_available():
        return {"device": device, "cuda_available": torch.cuda.is_available()}
    properties = torch.cuda.get_device_properties(0)
    return {
        "device": device,
        "cuda_available": True,
        "device_name": torch.cuda.get_device_name(0),
        "device_count": torch.cuda.device_count(),
        "memory_gib": properties.total_memory / 2**30,
        "compute_capability": f"{properties.major}.{properties.minor}",
    }


def run_check(settings: CheckSettings) -> dict[str, Any]:
    created = datetime.now(UTC)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "created_utc": created.isoformat(),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(settings).items()},
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        **device_description(settings.device),
        "steps": {},
    }
    if settings.device == "cuda" and not torch.cuda.is_available():
        report["steps"]["device"] = {"ok": False, "error": "torch sees no GPU: install a CUDA build of torch"}
    with tempfile.TemporaryDirectory(prefix="htr_gpu_check_") as folder:
        work = Path(folder)
        steps = report["steps"]
        if "cuda_tests" not in settings.skip:
            steps["cuda_tests"] = timed_step("cuda_tests", lambda: run_cuda_tests(settings, work))
        if "benchmark" not in settings.skip:
            steps["benchmark"] = timed_step("benchmark", lambda: run_benchmark(settings, work))
        project = tiny_project(settings, work)
        if "end_to_end" not in settings.skip:
            steps["end_to_end"] = timed_step("end_to_end", lambda: run_end_to_end(project))
            if "resume" not in settings.skip and steps["end_to_end"]["ok"]:
                steps["resume"] = timed_step("resume", lambda: run_resume(project, steps["end_to_end"]))
    report["ok"] = all(step["ok"] for step in report["steps"].values())
    report["seconds"] = time.perf_counter() - started
    return report


def _environment() -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check, write its report; 0 when every step passed, 1 otherwise."""
    settings = parse_arguments(argv)
    report = run_check(settings)
    output = settings.output or settings.project / REPORT_FOLDER / f"gpu_check_{report['created_utc'][:19]}.json"
    output = output.with_name(output.name.replace(":", ""))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    failed = [name for name, step in report["steps"].items() if not step["ok"]]
    print(f"gpu_check: report {output}; {'all steps passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
