"""The data_ingestion pipeline in a real Kedro session, tracked in a real MLflow sqlite store."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.tracking import MlflowClient

from htr_pipeline.charset import Charset
from htr_pipeline.config import ConfigError, SourceSettings, effective_parameters, validate_parameters
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.data.sources import registry
from htr_pipeline.data.sources.common import line_sample, require_folder, sample_id_of
from htr_pipeline.data.sources.pixels import ImageFile
from htr_pipeline.data.sources.registry import SourceKind, register_source_kind
from htr_pipeline.data.sources.units import SourceContext, SourceUnit
from tests.conftest import flatten_as_logged, small_synthetic_parameters, write_line_png


def run_pipeline(project: Path, pipeline: str = "data_ingestion", runtime_params: dict | None = None):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=runtime_params) as session:
        session.run(pipeline_names=[pipeline])
        return session.load_context().catalog


@pytest.mark.slow
def test_session_writes_versioned_outputs_and_logs_the_validated_config(kedro_project: Path):
    catalog = run_pipeline(kedro_project)

    manifest = catalog.load("manifest")
    assert len(manifest) == 36
    assert manifest.groupby("split").size().to_dict() == {"test": 6, "train": 24, "valid": 6}
    for name in ("manifest.parquet", "charset.json", "line_images"):
        versions = list((kedro_project / "data" / "03_primary" / name).iterdir())
        assert len(versions) == 1 and (versions[0] / name).exists()
    assert list((kedro_project / "data" / "08_reporting" / "dataset_report.png").iterdir())

    store = catalog.load("line_images")
    assert isinstance(store, LineImageStore)
    first = manifest.iloc[0]
    clean, degraded = store.read(first["clean_path"]), store.read(first["degraded_path"])
    assert clean.shape == degraded.shape == (32, first["width"])

    charset = catalog.load("charset")
    assert isinstance(charset, Charset)
    train_text = "".join(manifest.loc[manifest["split"] == "train", "transcription"])
    assert set(charset.symbols) == set(train_text)
    report = catalog.load("dataset_report")
    assert report["samples_per_split"] == {"test": 6, "train": 24, "valid": 6}

    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project.as_posix()}/mlflow.db")
    experiment = client.get_experiment_by_name("htr_pipeline")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "data_ingestion"
    expected = flatten_as_logged(
        {"data": effective_parameters(validate_parameters(small_synthetic_parameters())).get("data")}
    )
    assert run.data.params == expected
    assert run.data.params["data.max_reject_fraction"] == "0.05"


def test_misplaced_runtime_parameter_stops_before_any_work(kedro_project: Path):
    with pytest.raises(ConfigError, match=r"data\.sources: unknown key|training\.image_height: unknown key"):
        run_pipeline(kedro_project, runtime_params={"training": {"image_height": 64}})
    assert not any((kedro_project / "data" / "03_primary").iterdir())


@pytest.mark.slow
def test_parameters_reach_nodes_validated_without_a_log_line_per_key(kedro_project: Path, caplog):
    bootstrap_project(kedro_project)  # configures logging, so the capture is attached after it
    loggers = [logging.getLogger(name) for name in ("kedro", "htr_pipeline")]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    try:
        catalog = run_pipeline(kedro_project)
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)

    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Loading data from") for message in messages)
    per_key = [
        message for message in messages if message.startswith(("Saving data to 'params:", "Saving data to params:"))
    ]
    assert per_key == []
    assert not [message for message in messages if message.startswith("Replacing dataset")]
    assert any(message.startswith("Parameters validated") for message in messages)
    data = catalog.load("params:data")
    assert data == validate_parameters(small_synthetic_parameters()).data
    assert catalog.load("params:data.image_height") == data.image_height == 32


class CsvLinesSource(SourceSettings):
    """A toy kind, defined here alone: line images listed in ``lines.csv`` (``file,text,split``)."""

    kind: Literal["csv_lines"]
    name: str = "csv_lines"
    path: Path
    delimiter: str = ","
    text_column: str = "text"

    @staticmethod
    def read(source: CsvLinesSource, context: SourceContext) -> Iterator[SourceUnit]:
        folder = require_folder(source.path, context, source.name)
        with (folder / "lines.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=source.delimiter):
                image = folder / row["file"]
                sample_id = sample_id_of(source.name, image.stem)
                line = line_sample(
                    source, sample_id, None, row["split"], row[source.text_column], None, ImageFile(str(image))
                )
                yield SourceUnit.settled(str(image), [line])


@pytest.mark.slow
def test_a_toy_source_kind_added_through_the_registry_alone_runs_end_to_end(kedro_project: Path, monkeypatch):
    monkeypatch.setattr(registry, "SOURCE_KINDS", dict(registry.SOURCE_KINDS))  # forgotten after the test
    register_source_kind(SourceKind(CsvLinesSource, CsvLinesSource.read, unit="line"))

    folder = kedro_project / "data" / "01_raw" / "toy"
    rows = ["file;text;split"]
    for index, split in enumerate(["train"] * 8 + ["valid"] * 2 + ["test"] * 2):
        write_line_png(folder / f"line_{index}.png", seed=index)
        rows.append(f"line_{index}.png;ligne {index};{split}")
    rows.append("ghost.png;no such image;train")
    (folder / "lines.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    parameters = small_synthetic_parameters()
    parameters["data"]["sources"] = [{"kind": "csv_lines", "name": "toy", "path": "data/01_raw/toy", "delimiter": ";"}]
    parameters["data"]["max_reject_fraction"] = 0.1
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))

    catalog = run_pipeline(kedro_project)

    manifest = catalog.load("manifest")
    assert manifest.groupby(["source", "source_kind", "split"]).size().to_dict() == {
        ("toy", "csv_lines", "test"): 2,
        ("toy", "csv_lines", "train"): 8,
        ("toy", "csv_lines", "valid"): 2,
    }
    assert manifest.set_index("sample_id").loc["toy:line_3", "transcription"] == "ligne 3"
    assert manifest["degraded_origin"].eq("synthesised").all()
    rejects = catalog.load("rejects")
    assert rejects[["sample_id", "reason"]].to_numpy().tolist() == [["toy:ghost", "unreadable_image"]]
    assert rejects.loc[0, "path"] == "data/01_raw/toy/ghost.png"  # as the settings name the folder

    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project.as_posix()}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("htr_pipeline").experiment_id])
    logged = [{"kind": "csv_lines", "name": "toy", "path": "data/01_raw/toy", "delimiter": ";", "text_column": "text"}]
    assert run.data.params["data.sources"] == str(logged)  # the validated settings of the toy kind, defaults too
