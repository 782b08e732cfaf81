"""One word per concept: the generator's output is "restored" in code, data and documents alike. A branch that
brings the old word back fails here; ``rename_restored.py`` (kept with the project's briefs) renames it."""

from __future__ import annotations

import re

from tests.project_files import current_lines, text_files

OLD_WORD = re.compile(r"enhanc", re.IGNORECASE)  # rename_restored: keep
KEPT = ("rename_restored: keep", "Enhance to read better")
"""A line that may still say it: one marked as kept, or the title of the GAN-HTR paper."""


def lines_with_the_old_word() -> list[str]:
    return [
        f"{name}:{number}: {line.strip()}"
        for name in text_files(include_tests=True)
        for number, line in current_lines(name)
        if OLD_WORD.search(line) and not any(kept in line for kept in KEPT)
    ]


def test_the_generators_output_is_called_restored_everywhere():
    assert lines_with_the_old_word() == []
