"""The GPU check's plumbing, proven on the CPU: ``--device cpu`` runs every step the command runs on a GPU (the
CUDA tests are then skipped with their reason) and writes one report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from htr_pipeline import gpu_check
from tests.conftest import PROJECT_ROOT, small_synthetic_parameters
from tests.test_bench import TINY_TRAINING


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's configuration with a tiny ``previous_system`` env, so the benchmark's ladder runs in seconds."""
    project = tmp_path / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "previous_system").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    for name in ("catalog.yml", "mlflow.yml"):
        shutil.copy(PROJECT_ROOT / "conf" / "base" / name, project / "conf" / "base" / name)
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(small_synthetic_parameters()))
    (project / "conf" / "previous_system" / "parameters.yml").write_text(yaml.safe_dump({"training": TINY_TRAINING}))
    return project


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_the_cpu_and_writes_one_report(project: Path, tmp_path: Path):
    output = tmp_path / "gpu_check.json"
    arguments = ["--device", "cpu", "--project", str(project), "--tests", str(PROJECT_ROOT / "tests" / "cuda")]
    status = gpu_check.main([*arguments, "--bench-lines", "12", "--output", str(output)])

    report = json.loads(output.read_text())
    assert status == 0 and report["ok"], json.dumps(report["steps"], indent=1)[:3000]
    steps = report["steps"]
    assert list(steps) == list(gpu_check.STEPS)
    assert steps["cuda_tests"]["tests"] > 10 and steps["cuda_tests"]["skipped"] == steps["cuda_tests"]["tests"]
    assert any("needs a CUDA GPU" in reason for reason in steps["cuda_tests"]["skip_reasons"])
    assert steps["benchmark"]["ladder"][0]["name"] == "previous_system"
    assert steps["end_to_end"]["epochs_run"] == gpu_check.EPOCHS
    assert steps["end_to_end"]["evaluation_summary"] is not None
    assert steps["resume"]["equal"] and steps["resume"]["epochs_run"] == gpu_check.EPOCHS  # resumed = straight
    assert report["device"] == "cpu" and report["seconds"] > 0


def test_a_failing_step_is_reported_and_makes_the_command_fail(project: Path, tmp_path: Path):
    output = tmp_path / "gpu_check.json"
    missing_tests = tmp_path / "no_such_tests"
    arguments = ["--device", "cpu", "--project", str(project), "--tests", str(missing_tests)]
    status = gpu_check.main([*arguments, "--output", str(output), "--skip", "benchmark", "end_to_end"])
    report = json.loads(output.read_text())
    assert status == 1 and not report["ok"]
    assert not report["steps"]["cuda_tests"]["ok"] and report["steps"]["cuda_tests"]["error"]
    assert list(report["steps"]) == ["cuda_tests"]
