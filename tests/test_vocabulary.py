"""One word per concept: the generator's output is "restored" in code, data and documents alike. A branch that
brings the old word back fails here; ``rename_restored.py`` (kept with the project's briefs) renames it."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import PROJECT_ROOT

OLD_WORD = re.compile(r"enhanc", re.IGNORECASE)  # rename_restored: keep
KEPT = ("rename_restored: keep", "Enhance to read better")
"""A line that may still say it: one marked as kept, or the title of the GAN-HTR paper."""
OLD_NAMES = ("<!-- old names -->", "<!-- /old names -->")
"""The README's migration note lists the old names between these two lines."""


def lines_with_the_old_word() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for name in listing.stdout.split():
        path = PROJECT_ROOT / name
        if not name.endswith((".py", ".md", ".yml", ".ipynb", ".sh", ".toml")) or not path.is_file():
            continue
        in_old_names = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() in OLD_NAMES:
                in_old_names = line.strip() == OLD_NAMES[0]
            if not in_old_names and OLD_WORD.search(line) and not any(kept in line for kept in KEPT):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_the_generators_output_is_called_restored_everywhere():
    assert lines_with_the_old_word() == []
