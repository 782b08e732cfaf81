"""Report datasets: a markdown report whose links reach the versioned files beside it, and images kedro-viz
previews; both log to MLflow what their catalog entry's ``mlflow:`` declares (:mod:`htr_pipeline.datasets.logged`).

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
from typing import Any

from kedro.io.core import Version, get_filepath_str
from kedro_datasets._typing import HTMLPreview, ImagePreview
from kedro_datasets.pillow import ImageDataset
from markdown_it import MarkdownIt
from PIL import Image, ImageDraw

from htr_pipeline.datasets.logged import LoggedTextDataset, MlflowLogged, mlflow_logging
from htr_pipeline.tracking.run_logging import active_run_id_or_none, log_artifact


class LinkedMarkdownDataset(LoggedTextDataset):
    """A versioned markdown file whose links to sibling files (``](evaluation_plots.png)``: a bare file name)
    point at the same run's version of the sibling dataset (``data/08_reporting/evaluation_plots.png/…``).

    MLflow gets the report as the node wrote it, bare links and all (``mlflow:``): the catalog logs the siblings
    under those names beside it, so the links resolve there too."""

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        mlflow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
            mlflow=mlflow,
        )
        self.report_path = PurePosixPath(filepath)

    def stored_form(self, data: str) -> str:
        return linked_report(data, self.report_path, self.resolve_save_version())

    def save(self, data: str) -> None:
        super().save(data)
        if self.to_mlflow.html is not None and active_run_id_or_none() is not None:
            saved = PurePosixPath(
                get_filepath_str(self._get_versioned_path(self.resolve_save_version()), self._protocol)
            )
            html = report_html(self.stored_form(data), lambda link: self._fs.open(str(saved.parent / link), "rb"))
            log_artifact(html_page(html), self.to_mlflow.html)

    def preview(self) -> HTMLPreview:
        """The newest report as HTML for kedro-viz, its images inlined as previews (a browser showing kedro-viz
        cannot open the project's files)."""
        path = PurePosixPath(get_filepath_str(self._get_load_path(), self._protocol))
        html = report_html(self.load(), lambda link: self._fs.open(str(path.parent / link), "rb"))
        return HTMLPreview(without_emphasis_marks(html))


KEDRO_VIZ_UNDERSCORE = "\u02cd"
"""What an underscore of a report's text looks like in its kedro-viz preview (MODIFIER LETTER LOW MACRON)."""


def without_emphasis_marks(html: str) -> str:
    """``html`` whose text has no underscore: kedro-viz runs a markdown pass over the HTML of a preview (after
    sanitising it, so an entity does not survive), and ``_`` ... ``_`` on a line, as in two paths, becomes
    italics and loses both underscores. The file and MLflow's copy keep the text as it is."""
    return re.sub(r">([^<]*)<", lambda match: ">" + match.group(1).replace("_", KEDRO_VIZ_UNDERSCORE) + "<", html)


PREVIEW_WIDTH_PX = 900
"""Width of the images a report preview inlines: readable in kedro-viz's expanded preview, light to load."""
_RENDERER = MarkdownIt("commonmark").enable("table")


def html_page(body: str) -> str:
    """A whole HTML page around ``body``: images fit the width, tables have rules (MLflow shows the page as it is)."""
    style = (
        "body{font-family:sans-serif;max-width:1100px}img{max-width:100%}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px}"
    )
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{style}</style></head><body>{body}</body></html>'


def report_html(text: str, open_image: Any) -> str:
    """A markdown report as HTML on one line (kedro-viz's renderer turns newlines into breaks), each image link
    that ``open_image(link)`` can open inlined as a PNG data URI no wider than :data:`PREVIEW_WIDTH_PX`."""
    html = _RENDERER.render(text).replace("\n", "")

    def inlined(match: re.Match[str]) -> str:
        try:
            with open_image(match.group(1)) as handle:
                image = Image.open(handle)
                image.load()
        except (OSError, ValueError):
            return match.group(0)  # left as the link it was
        image.thumbnail((PREVIEW_WIDTH_PX, PREVIEW_WIDTH_PX * 8))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return f'src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode("ascii")}"'

    return re.sub(r'src="([^"]+\.png)"', inlined, html)


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


class PreviewedImageDataset(MlflowLogged, ImageDataset):
    """A Pillow image that kedro-viz previews (``kedro viz --include-previews``)."""

    def __init__(
        self,
        *,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        mlflow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            save_args=save_args,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        self.to_mlflow = mlflow_logging(mlflow)

    def preview(self) -> ImagePreview:
        buffer = io.BytesIO()
        readable_preview(self.load()).save(buffer, format="PNG")
        return ImagePreview(base64.b64encode(buffer.getvalue()).decode("ascii"))


PREVIEW_ASPECT = 0.75
"""A preview at most this high for its width: a tall figure (the gallery) previews its top part, readable in
kedro-viz's panel, rather than the whole of it too small to read."""


def readable_preview(image: Image.Image) -> Image.Image:
    """``image`` no wider than :data:`PREVIEW_WIDTH_PX`; a tall one cut to its top part, with a line saying so."""
    shown = image.convert("RGB")
    shown.thumbnail((PREVIEW_WIDTH_PX, image.height))
    height = int(shown.width * PREVIEW_ASPECT)
    if shown.height <= height:
        return shown
    note = 24
    cut = Image.new("RGB", (shown.width, height + note), "white")
    cut.paste(shown.crop((0, 0, shown.width, height)), (0, 0))
    ImageDraw.Draw(cut).text(
        (8, height + 6),
        f"preview: the top {height / shown.height:.0%} of a {image.width} x {image.height} px image; open the file "
        "for all of it",
        fill="black",
    )
    return cut
