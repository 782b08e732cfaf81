"""The README's configuration reference names every key of the schema, and its commands are what CI runs."""

from pathlib import Path

import pytest

from htr_pipeline.config import (
    SPLIT_NAMES,
    DataConfig,
    DiagnosticsConfig,
    EvaluationConfig,
    InferenceConfig,
    TrainingConfig,
    _field_paths,
)

ROOT = Path(__file__).resolve().parents[1]


def _documented_name(path: tuple[str, ...]) -> str:
    """How the reference names a key: full path, source keys relative to the source, splits by their parent."""
    parts = [part for part in path if part != "[]"]
    if parts[-1] in SPLIT_NAMES:
        parts = parts[:-1]
    if len(parts) > 2 and parts[1] == "degradations":
        return "data.degradations.<kind>." + parts[3] if len(parts) > 3 else parts[2]
    if len(parts) > 2 and parts[1] == "sources":
        return ".".join(parts[2:])
    return ".".join(parts)


def test_every_data_key_is_documented():
    readme = ROOT.joinpath("README.md").read_text()
    for path in _field_paths(DataConfig, ("data",)):
        name = _documented_name(path)
        assert f"`{name}`" in readme, f"{'.'.join(path)} is missing from the README's configuration reference"


def test_ci_runs_the_readme_test_command():
    readme = ROOT.joinpath("README.md").read_text()
    ci = ROOT.joinpath(".ci", "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme


@pytest.mark.parametrize(
    ("model", "section"),
    [
        (TrainingConfig, "training"),
        (EvaluationConfig, "evaluation"),
        (DiagnosticsConfig, "diagnostics"),
        (InferenceConfig, "inference"),
    ],
)
def test_every_training_evaluation_and_diagnostics_key_is_documented(model, section):
    readme = ROOT.joinpath("README.md").read_text()
    for path in _field_paths(model, (section,)):
        name = ".".join(path)
        documented = f"`{name}`" in readme or f"`{name}." in readme  # a section is documented by its keys
        assert documented, f"{name} is missing from the README's configuration reference"


def _readme_lines_starting(prefix: str) -> list[str]:
    readme = ROOT.joinpath("README.md").read_text()
    return [line.split("  #")[0].strip() for line in readme.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["notebook", "lab"])
def test_the_readme_jupyter_commands_start_a_server(interface: str, tmp_path: Path):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    (command,) = [line for line in _readme_lines_starting(".venv/bin/kedro jupyter notebook") if line]
    comment = ROOT.joinpath("README.md").read_text().split(command, 1)[1].splitlines()[0]
    typed = command if interface == "notebook" else re.search(r"\.venv/bin/kedro jupyter lab", comment).group(0)
    kedro = Path(sys.executable).parent / "kedro"
    arguments = [str(kedro), *typed.split()[1:], "--no-browser", "--port=0", "--ServerApp.token=''"]
    arguments += ["--allow-root"] if os.geteuid() == 0 else []  # Jupyter refuses root (CI containers) without it
    # Jupyter's own folders (and the kernel spec Kedro installs) in a temporary place, not the user's home.
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    environment |= {"JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "run")}
    # A session of its own: kedro starts Jupyter as a child, and the whole group is stopped at the end.
    server = subprocess.Popen(
        arguments,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            line = server.stdout.readline()
            output.append(line)
            if "http://127.0.0.1:" in line or "http://localhost:" in line:
                break
        assert any("http://" in line for line in output), "".join(output)[-3000:]
        assert (tmp_path / "data" / "kernels" / "kedro_htr_pipeline").is_dir()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
