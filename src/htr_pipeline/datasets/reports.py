"""Report datasets: a markdown report whose links reach the versioned files beside it, and images kedro-viz
previews.

A versioned dataset saves ``<filepath>/<version>/<name>``, so a report's ``![](evaluation_plots.png)`` would
point at nothing. Every output of one run shares the run's save version; the report dataset rewrites each link
it is told about to the relative path of that version's file, which opens from where the report is saved (a
markdown viewer, the notebook, kedro-viz, a file browser).
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import PurePosixPath

from kedro_datasets._typing import ImagePreview
from kedro_datasets.pillow import ImageDataset
from kedro_datasets.text import TextDataset


class LinkedMarkdownDataset(TextDataset):
    """A versioned markdown file whose links to sibling files (``](evaluation_plots.png)``: a bare file name)
    point at the same run's version of the sibling dataset (``data/08_reporting/evaluation_plots.png/…``)."""

    def save(self, data: str) -> None:
        super().save(linked_report(data, self._filepath, self.resolve_save_version()))


_SIBLING_LINK = re.compile(r"\]\(([\w.-]+\.(?:png|md|json|csv))\)")
"""A markdown link to a bare file name: a dataset saved beside the report."""


def linked_report(text: str, report_path: PurePosixPath, version: str | None) -> str:
    """``text`` with each link to a sibling file replaced by the relative path of that sibling's ``version``."""
    if version is None:
        return text
    report_folder = report_path / version

    def versioned(match: re.Match[str]) -> str:
        sibling = report_path.parent / match.group(1)
        return f"]({os.path.relpath(sibling / version / sibling.name, report_folder)})"

    return _SIBLING_LINK.sub(versioned, text)


class PreviewedImageDataset(ImageDataset):
    """A Pillow image that kedro-viz previews (``kedro viz --include-previews``)."""

    def preview(self) -> ImagePreview:
        buffer = io.BytesIO()
        self.load().save(buffer, format="PNG")
        return ImagePreview(base64.b64encode(buffer.getvalue()).decode("ascii"))
