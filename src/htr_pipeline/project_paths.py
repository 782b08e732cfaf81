"""Paths as the project stores them: relative to the project folder, so a copied project still finds its files.

Kedro hands datasets absolute paths; what we write into summaries, reports and MLflow tags is made relative
here, and resolved against the project folder again when read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_MARKER = "[tool.kedro]"
"""What a Kedro project's ``pyproject.toml`` holds (Kedro finds its project the same way)."""


def _kedro_project_above(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and PROJECT_MARKER in pyproject.read_text(encoding="utf-8"):
            return candidate
    return None


def _root_or_cwd(root: Path | None) -> Path:
    """The project folder; outside any project (a library call in a plain script), the working folder."""
    if root is not None:
        return root.resolve()
    return (_kedro_project_above(Path.cwd().resolve()) or Path.cwd()).resolve()


def project_relative(path: str | Path, root: Path | None = None) -> str:
    """``path`` relative to the project folder (POSIX), or as it is when it lies outside the project."""
    base = _root_or_cwd(root)
    absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    try:
        return absolute.resolve().relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()


def resolve_in_project(path: str | Path, root: Path | None = None) -> Path:
    """A stored path read back: a relative one lies in the project folder, an absolute one stays as it is."""
    return Path(path) if Path(path).is_absolute() else _root_or_cwd(root) / path


def mlflow_ui_command(root: Path, port: str | int = 5000) -> str:
    """The ``mlflow ui`` command that opens this project's store, as typed in the project folder.

    Without an activated virtual environment ``mlflow`` (and ``kedro mlflow ui``) is not on the PATH, so the
    command names the ``mlflow`` script next to the running Python.
    """
    script = Path(sys.executable).parent / "mlflow"
    active = os.environ.get("VIRTUAL_ENV") and Path(os.environ["VIRTUAL_ENV"]).resolve() == Path(sys.prefix).resolve()
    program = "mlflow" if active or not script.exists() else project_relative(script, root)
    return f"{program} ui --backend-store-uri sqlite:///mlflow.db --port {port}"
