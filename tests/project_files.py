"""The project's own text files, read line by line, for the tests that hold names and references true."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

from tests.conftest import PROJECT_ROOT

TEXT_SUFFIXES = (".py", ".md", ".yml", ".ipynb", ".sh", ".toml")
OLD_NAMES = ("<!-- old names -->", "<!-- /old names -->")
"""The README's migration note lists names that no longer exist between these two lines."""


def project_files() -> list[str]:
    """Every file git tracks, or would track (untracked and not ignored), relative to the project root."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listing.stdout.split() if (PROJECT_ROOT / name).is_file()]


def current_lines(name: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of a project text file, leaving out the migration note's old names."""
    in_old_names = False
    for number, line in enumerate((PROJECT_ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() in OLD_NAMES:
            in_old_names = line.strip() == OLD_NAMES[0]
        elif not in_old_names:
            yield number, line


def text_files(include_tests: bool) -> list[str]:
    return [
        name
        for name in project_files()
        if name.endswith(TEXT_SUFFIXES) and (include_tests or not name.startswith("tests/"))
    ]
