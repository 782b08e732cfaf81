"""Shared fixtures: small real data, a throw-away Kedro project with its own MLflow sqlite store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from htr_pipeline.config import flatten_as_logged  # noqa: F401  (re-exported for tests)

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def requires_shared_data(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (SHARED_DATA / name).is_dir(),
        reason=f"real data set {SHARED_DATA / name} is absent (it lives beside the project, never inside it)",
    )


CUDA_TESTS = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); on a GPU machine: scripts/gpu_check.sh",
    ),
]
"""``pytestmark`` of every module in tests/cuda: run wherever a GPU is, skipped with the reason elsewhere."""


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small models run fastest on one thread; two competing threads contend badly on a two-core CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_runs():
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


def write_line_png(path: Path, width: int = 120, height: int = 32, seed: int = 0) -> Path:
    """A real grayscale PNG with a few dark strokes on light paper."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 235, dtype=np.uint8)
    for _ in range(6):
        x = int(rng.integers(0, max(1, width - 10)))
        image[height // 4 : 3 * height // 4, x : x + 3] = 20
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


TINY_JUDGE = {
    "seed": 11,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 12, "lstm_layers": 1},
}
"""A judge as small as the tiny in-loop recognizers of the tests, with its own seed and width."""

SMOKE_GATE = {"max_val_cer": 10.0}
"""Tiny recognizers trained for an epoch or two cannot read yet; smoke runs open the gate between the stages
(tests/training/test_recognizer_gate.py shows it shut)."""


def small_synthetic_parameters(train: int = 24, valid: int = 6, test: int = 6) -> dict:
    return {
        "data": {
            "seed": 7,
            "sources": [
                {
                    "kind": "synthetic",
                    "name": "synthetic",
                    "lines_per_split": {"train": train, "valid": valid, "test": test},
                    "line_chars": [6, 16],
                }
            ],
            "image_height": 32,
            "max_width": 256,
            "num_workers": 1,
        },
        "training": {},
        # Tiny models learn nothing: a run without gain is their expected outcome, not a failure (exit 0).
        "evaluation": {"expect_gain": False},
        "diagnostics": {},
        "inference": {"expect_gain": False},
    }


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of this project's configuration in a temp folder, with small parameters; cwd is set to it."""
    project = tmp_path / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # the package itself is installed; kedro only checks the folder exists
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    for name in ("catalog.yml", "mlflow.yml"):
        shutil.copy(PROJECT_ROOT / "conf" / "base" / name, project / "conf" / "base" / name)
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(small_synthetic_parameters()))
    for layer in ("01_raw", "03_primary", "08_reporting"):
        (project / "data" / layer).mkdir(parents=True)
    monkeypatch.chdir(project)
    return project
