"""What the code and the documents name exists: every ``htr_pipeline.<module>.<name>`` they cite resolves, and every
project file they cite is in the repository. A rename that leaves a stale reference behind fails here."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

from tests.conftest import PROJECT_ROOT

DOTTED_NAME = re.compile(r"htr_pipeline(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PROJECT_PATH = re.compile(r"(?<![\w./-])(?:src|tests|conf|scripts|notebooks)/[\w./-]*\w")
OUTSIDE_THE_REPOSITORY = ("conf/local/",)
"""Paths a document names that are never committed: the git-ignored ``conf/local``."""
OLD_NAMES = ("<!-- old names -->", "<!-- /old names -->")
"""The README's migration note names what no longer exists, between these two lines."""


def _tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return listing.stdout.split()


def _documents() -> list[Path]:
    """Code, configuration and documents; tests are left out, since some name things that must not exist."""
    return [
        PROJECT_ROOT / name
        for name in _tracked_files()
        if name.endswith((".py", ".md", ".yml", ".ipynb", ".sh", ".toml")) and not name.startswith("tests/")
    ]


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
    cited: dict[str, list[str]] = {}
    for path in _documents():
        in_old_names = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() in OLD_NAMES:
                in_old_names = line.strip() == OLD_NAMES[0]
            if in_old_names:
                continue
            for match in pattern.finditer(line):
                cited.setdefault(match.group(0).rstrip("."), []).append(f"{path.relative_to(PROJECT_ROOT)}:{number}")
    return cited


def test_every_cited_module_and_name_exists():
    stale = {name: where for name, where in _citations(DOTTED_NAME).items() if not _resolves(name)}
    assert stale == {}


def test_every_cited_project_file_exists():
    tracked = set(_tracked_files())
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
