"""`kedro viz build` produces the static lineage site with every registered pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from htr_pipeline.pipeline_registry import register_pipelines


@pytest.mark.slow
def test_kedro_viz_build_shows_every_registered_pipeline(kedro_project: Path):
    kedro = Path(sys.executable).parent / "kedro"
    result = subprocess.run(
        [str(kedro), "viz", "build"],
        cwd=kedro_project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"KEDRO_DISABLE_TELEMETRY": "true", "PATH": str(kedro.parent) + ":/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    main = json.loads((kedro_project / "build" / "api" / "main").read_text())
    shown = {pipeline["id"] for pipeline in main["pipelines"]}
    assert shown == set(register_pipelines())
    node_names = {node["name"] for node in main["nodes"]}
    assert {"read_sources", "materialise_samples", "build_charset", "manifest", "charset"} <= node_names
