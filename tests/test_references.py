"""What the code and the documents name exists: every ``htr_pipeline.<module>.<name>`` they cite resolves, and every
project file they cite is in the repository. A rename that leaves a stale reference behind fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from tests.project_files import current_lines, project_files, text_files

DOTTED_NAME = re.compile(r"htr_pipeline(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PROJECT_PATH = re.compile(r"(?<![\w./-])(?:src|tests|conf|scripts|notebooks)/[\w./-]*\w")
OUTSIDE_THE_REPOSITORY = ("conf/local/",)
"""Paths a document names that are never committed: the git-ignored ``conf/local``."""


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for part in parts[end:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


def _citations(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Where code, configuration and documents cite what ``pattern`` matches; tests are left out, since some name
    things that must not exist."""
    cited: dict[str, list[str]] = {}
    for name in text_files(include_tests=False):
        for number, line in current_lines(name):
            for match in pattern.finditer(line):
                cited.setdefault(match.group(0).rstrip("."), []).append(f"{name}:{number}")
    return cited


def test_every_cited_module_and_name_exists():
    stale = {name: where for name, where in _citations(DOTTED_NAME).items() if not _resolves(name)}
    assert stale == {}


def test_every_cited_project_file_exists():
    tracked = set(project_files())
    folders = {str(Path(name).parent) for name in tracked} | {
        str(parent) for name in tracked for parent in Path(name).parents
    }
    stale = {
        path: where
        for path, where in _citations(PROJECT_PATH).items()
        if not path.startswith(OUTSIDE_THE_REPOSITORY) and "<" not in path and path.rstrip("/") not in tracked | folders
    }
    assert stale == {}


def test_a_stale_citation_is_found():
    assert not _resolves("htr_pipeline.hooks.MovedProjectHook")
    assert _resolves("htr_pipeline.hooks.MlflowRunHook")
    assert PROJECT_PATH.findall("see tests/test_logged_datasets.py, not src/") == ["tests/test_logged_datasets.py"]
