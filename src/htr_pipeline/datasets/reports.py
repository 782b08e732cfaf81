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

from kedro.io.core import Version
from kedro_datasets._typing import ImagePreview
from kedro_datasets.pillow import ImageDataset

from htr_pipeline.datasets.logged import LoggedTextDataset, MlflowLogged, mlflow_logging


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
        self.load().save(buffer, format="PNG")
        return ImagePreview(base64.b64encode(buffer.getvalue()).decode("ascii"))
