"""The code stays ruff-clean and ruff-formatted (the project's style guide asks for it); CI runs this with the rest
of the suite."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"
    for command in (["check", "src", "tests"], ["format", "--check", "src", "tests"]):
        result = subprocess.run([str(ruff), *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
