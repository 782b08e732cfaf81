"""Later pipelines read one complete ingestion (and one complete training), never a mix nor a half-written one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io.core import DatasetError
from PIL import Image

from htr_pipeline.datasets.file_folder import FileFolderDataset
from htr_pipeline.hooks import ConsistentVersionsHook
from htr_pipeline.pipeline_registry import register_pipelines

PRIMARY = Path("data") / "03_primary"


def _ingest(project: Path, runtime_params: dict | None = None, to_nodes: list[str] | None = None) -> None:
    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=runtime_params) as session:
            session.run(pipeline_names=["data_ingestion"], to_nodes=to_nodes)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()


def _unfinished_ingestion(project: Path) -> str:
    """A second ingestion, of other lines, that stops after its images and manifest: no charset, no record."""
    _ingest(project, {"data": {"seed": 8}}, to_nodes=["materialise_samples"])
    return max(_versions(project, "manifest.parquet"))


def _versions(project: Path, name: str) -> list[str]:
    return sorted(path.name for path in (project / PRIMARY / name).iterdir())


def _catalog_as_read_by(project: Path, pipeline: str):
    """The catalog a ``pipeline`` run would load from, once the hook has chosen its versions."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
    ConsistentVersionsHook().before_pipeline_run({"load_versions": {}}, register_pipelines()[pipeline], catalog)
    return catalog


@pytest.mark.slow
def test_a_complete_ingestion_records_every_output_at_its_one_version(kedro_project: Path):
    _ingest(kedro_project)
    (version,) = _versions(kedro_project, "ingestion_record.json")
    record_file = kedro_project / PRIMARY / "ingestion_record.json" / version / "ingestion_record.json"
    record = json.loads(record_file.read_text())
    assert record["pipeline"] == "data_ingestion"
    assert set(record["versions"]) == {
        "charset",
        "dataset_gallery",
        "dataset_report",
        "dataset_report_plot",
        "line_images",
        "manifest",
        "rejects",
    }
    assert set(record["versions"].values()) == {version}


@pytest.mark.slow
def test_an_unfinished_ingestion_is_never_paired_with_an_older_one(
    kedro_project: Path, caplog: pytest.LogCaptureFixture
):
    _ingest(kedro_project)
    (complete,) = _versions(kedro_project, "manifest.parquet")
    unfinished = _unfinished_ingestion(kedro_project)
    assert unfinished != complete and _versions(kedro_project, "charset.json") == [complete]

    hook_logger = logging.getLogger("htr_pipeline.hooks")  # Kedro's logging setup may stop it propagating
    hook_logger.addHandler(caplog.handler)
    try:
        catalog = _catalog_as_read_by(kedro_project, "training")
    finally:
        hook_logger.removeHandler(caplog.handler)
    assert catalog.load("line_images").root.parent.name == complete
    stored = kedro_project / PRIMARY / "manifest.parquet" / complete / "manifest.parquet"
    assert catalog.load("manifest").equals(pd.read_parquet(stored))
    assert (
        f"Ignoring data_ingestion version {unfinished}: that run did not finish (killed, failed, or still "
        f"writing), so it has no ingestion_record; reading charset, line_images, manifest from the newest "
        f"complete run, {complete}." in caplog.text
    )


@pytest.mark.slow
def test_versions_given_on_the_command_line_are_read_as_given(kedro_project: Path):
    _ingest(kedro_project)
    unfinished = _unfinished_ingestion(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        catalog = session.load_context().catalog
    hook = ConsistentVersionsHook()
    hook.before_pipeline_run({"load_versions": {"manifest": unfinished}}, register_pipelines()["training"], catalog)
    assert catalog["manifest"].resolve_load_version() == unfinished
    assert catalog["charset"].resolve_load_version() == min(_versions(kedro_project, "manifest.parquet"))


def test_a_line_image_folder_appears_only_once_complete(tmp_path: Path):
    dataset = FileFolderDataset(filepath=str(tmp_path / "line_images"))
    image = np.full((8, 16), 200, dtype=np.uint8)
    with pytest.raises(DatasetError, match="expected a 2-D uint8 image"):
        dataset.save({"clean/a.png": image, "clean/b.png": image.astype(np.float32)})
    assert not (tmp_path / "line_images").exists()
    # A save that fails (a bad image, a full disk, a name too long) leaves no half folder either (issue 24); one
    # killed mid-save leaves only the hidden .partial folder, which is never taken for a version.
    assert not (tmp_path / ".line_images.partial").exists()
    dataset = FileFolderDataset(filepath=str(tmp_path / "other"))
    dataset.save({"clean/a.png": image})
    assert np.asarray(Image.open(tmp_path / "other" / "clean" / "a.png")).tolist() == image.tolist()
