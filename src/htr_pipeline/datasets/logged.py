"""Kedro datasets that also log what they save to the active MLflow run, as their catalog entry declares.

``conf/base/catalog.yml`` is the map of what goes to MLflow: an entry of one of these types says it under
``mlflow:``, and nothing else decides it (no hook looks at dataset names)::

    evaluation_summary:
      type: htr_pipeline.datasets.logged.LoggedJSONDataset
      filepath: data/08_reporting/evaluation_summary.json
      versioned: true
      mlflow:
        artifacts: [evaluation/summary.json]   # the saved data, under these names among the run's artifacts
        numbers: evaluation                    # its numbers as metrics and params (tracking's OUTPUT_NUMBERS)
        tags: {verdict: htr.verdict}           # a field of the saved data -> the run tag that holds it
        link: {run_id_field: ..., tag: ..., back_tag: ...}   # tags between this run and the run it concerns

What is saved is saved as the dataset type it extends saves it (same files, same versions); the MLflow part
happens only while an MLflow run is active (a ``kedro run``), so saving through the catalog in a notebook logs
nothing and never starts a run. A saved value is logged as it is: a markdown report with its links to sibling
names (``evaluation_plots.png``), which the catalog logs the siblings under, so the links resolve in MLflow.

kedro-mlflow's ``MlflowArtifactDataset`` is not used: it builds the dataset it wraps with a save version of its
own, which Kedro 1.7 refuses for a versioned dataset (``VersionAlreadyExistsError``: every dataset of a run
shares the run's save version, and every output here is versioned), and it logs a file under the file's name
(``evaluation_summary.json``), not the names the store has always had (``evaluation/summary.json``).
``tests/datasets/test_logged.py`` checks both facts against the installed kedro-mlflow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from kedro.io import AbstractDataset, MemoryDataset
from kedro.io.core import DatasetError, Version
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.text import TextDataset
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from htr_pipeline.tracking.logged_models import ModelsToLog, log_models_to_log
from htr_pipeline.tracking.run_logging import (
    OUTPUT_NUMBERS,
    active_run_id_or_none,
    current_tracking_uri,
    log_artifact,
    log_metric_points,
    log_numbers,
    read_metric_points,
)
from htr_pipeline.tracking.store import finish_continued_run, link_runs, tag_run

logger = logging.getLogger(__name__)


class RunLink(BaseModel):
    """Tags between this run and the runs the saved data concerns: the training an evaluation evaluated (one run),
    the runs a comparison compares (many runs, one comparison)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id_field: str
    """The field of the saved data holding the other run's id, or a list of ids (nothing is tagged when it is null
    or empty)."""
    tag: str
    """Set on this run: the other run's id (of a list: the ids, comma-separated)."""
    back_tag: str
    """Set on each other run: this run's id."""
    store_field: str | None = None
    """The field holding the other run's store: the other run is tagged back only when that is this store."""


class MlflowLogging(BaseModel):
    """The ``mlflow:`` block of a catalog entry: what of the saved data goes to the active MLflow run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifacts: tuple[str, ...] = ()
    """Artifact files of the run the saved data is logged as (one upload per name)."""
    numbers: str | None = None
    """How its numbers become metrics and params: a name of ``tracking.run_logging.OUTPUT_NUMBERS``."""
    tags: dict[str, str] = {}
    """``{field of the saved data: run tag}``."""
    run_id_field: str | None = None
    """The tags go on the run whose id this field holds (the run a resumed training continued); default: this run."""
    finish_run: bool = False
    """The run ``run_id_field`` names, when it is not this run, ends ``FINISHED``: this run completed it."""
    link: RunLink | None = None
    html: str | None = None
    """A markdown report also as this HTML artifact, its images inlined: MLflow's markdown view shows no image
    (``datasets.reports.LinkedMarkdownDataset``; the images must be saved before the report)."""

    @field_validator("numbers")
    @classmethod
    def _known_numbers(cls, name: str | None) -> str | None:
        if name is not None and name not in OUTPUT_NUMBERS:
            raise ValueError(f"unknown numbers '{name}'; known: {', '.join(sorted(OUTPUT_NUMBERS))}")
        return name

    @model_validator(mode="after")
    def _finish_names_a_run(self) -> MlflowLogging:
        if self.finish_run and self.run_id_field is None:
            raise ValueError("finish_run needs run_id_field: the field that names the run to finish")
        return self


def log_saved(data: Any, declared: MlflowLogging, dataset: str) -> None:
    """Everything ``declared`` declares for ``data``, into the active run; nothing without one."""
    this_run = active_run_id_or_none()
    if this_run is None:
        logger.debug("%s: no active MLflow run, nothing logged", dataset)
        return
    for artifact_file in declared.artifacts:
        log_artifact(data, artifact_file)
    if declared.numbers is not None:
        log_numbers(OUTPUT_NUMBERS[declared.numbers](data))
    tagged_run = this_run if declared.run_id_field is None else _field(data, declared.run_id_field, dataset)
    if declared.tags:
        tag_run(tagged_run, {tag: str(_field(data, name, dataset)) for name, tag in declared.tags.items()})
    if declared.finish_run and tagged_run != this_run:
        finish_continued_run(tagged_run)
        logger.info("MLflow run %s, continued by this resume, is FINISHED", tagged_run)
    if declared.link is not None:
        _link(data, declared.link, this_run, dataset)


def _link(data: Any, link: RunLink, this_run: str, dataset: str) -> None:
    other_runs = _run_ids(_field(data, link.run_id_field, dataset), link.run_id_field, dataset)
    if not other_runs:
        return
    same_store = link.store_field is None or _field(data, link.store_field, dataset) == current_tracking_uri()
    link_runs(other_runs, link.tag, link.back_tag, this_run, same_store)


def _run_ids(value: Any, name: str, dataset: str) -> list[str]:
    """A link field's run ids: one id, a list of them, or none (null)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(run_id, str) for run_id in value):
        return list(value)
    raise DatasetError(
        f"{dataset}: the link's field '{name}' holds a {type(value).__name__}, not a run id or a list of run ids"
    )


def _field(data: Any, name: str, dataset: str) -> Any:
    """A key of a mapping, or an attribute of an object."""
    try:
        return data[name] if isinstance(data, Mapping) else getattr(data, name)
    except (KeyError, AttributeError) as error:
        raise DatasetError(
            f"{dataset}: its catalog entry's mlflow block names '{name}', which the saved data does not have"
        ) from error


class MlflowLogged:
    """Placed before a Kedro dataset type: saves as that type, then logs as ``mlflow:`` declares."""

    to_mlflow: MlflowLogging

    def save(self, data: Any) -> None:
        super().save(self.stored_form(data))  # type: ignore[misc]
        log_saved(data, self.to_mlflow, str(self))

    def stored_form(self, data: Any) -> Any:
        """What the dataset type saves of ``data`` (MLflow gets ``data`` itself)."""
        return data

    def _describe(self) -> dict[str, Any]:
        described = super()._describe()  # type: ignore[misc]
        return {**described, "mlflow": self.to_mlflow.model_dump(exclude_defaults=True)}


def mlflow_logging(mlflow: Mapping[str, Any] | None) -> MlflowLogging:
    """The ``mlflow:`` argument of a catalog entry, validated (an unknown key is an error naming it)."""
    return MlflowLogging.model_validate(dict(mlflow or {}))


class LoggedJSONDataset(MlflowLogged, JSONDataset):
    """``json.JSONDataset`` plus ``mlflow:``."""

    def __init__(
        self,
        *,
        filepath: str | os.PathLike,
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


class LoggedParquetDataset(MlflowLogged, ParquetDataset):
    """``pandas.ParquetDataset`` plus ``mlflow:`` (a table logged under a ``.parquet`` name)."""

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        mlflow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            load_args=load_args,
            save_args=save_args,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        self.to_mlflow = mlflow_logging(mlflow)


class LoggedCSVDataset(MlflowLogged, CSVDataset):
    """``pandas.CSVDataset`` plus ``mlflow:`` (a table logged under a ``.csv`` name)."""

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        mlflow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            load_args=load_args,
            save_args=save_args,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        self.to_mlflow = mlflow_logging(mlflow)


class LoggedTextDataset(MlflowLogged, TextDataset):
    """``text.TextDataset`` plus ``mlflow:``."""

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
            filepath=filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata
        )
        self.to_mlflow = mlflow_logging(mlflow)


class LoggedMemoryDataset(MlflowLogged, MemoryDataset):
    """``MemoryDataset`` plus ``mlflow:``: an object a later node reads in memory, and whose fields tag the run."""

    def __init__(
        self,
        copy_mode: str | None = None,
        metadata: dict[str, Any] | None = None,
        mlflow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(copy_mode=copy_mode, metadata=metadata)  # type: ignore[arg-type]
        self.to_mlflow = mlflow_logging(mlflow)


class LoggedModelsDataset(AbstractDataset[ModelsToLog, dict[str, str]]):
    """The models an evaluation logs (:class:`~htr_pipeline.tracking.logged_models.ModelsToLog`): saving logs them
    to the active run as MLflow models and as weights plus settings, and registers the generator when asked;
    loading gives the URIs of the models logged last. ``htr_pipeline.tracking.load_logged_model`` loads one back
    without unpickling it."""

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        self.metadata = metadata
        self._model_uris: dict[str, str] | None = None

    def load(self) -> dict[str, str]:
        if self._model_uris is None:
            raise DatasetError("no models were logged by this session yet")
        return dict(self._model_uris)

    def save(self, data: ModelsToLog) -> None:
        if active_run_id_or_none() is not None:
            self._model_uris = log_models_to_log(data)

    def _exists(self) -> bool:
        return self._model_uris is not None

    def _describe(self) -> dict[str, Any]:
        return {"model_uris": self._model_uris}


class MlflowMetricsDataset(AbstractDataset[Mapping[str, Any], dict[str, list[dict[str, float]]]]):
    """Metrics in kedro-mlflow's form (``{name: {"value", "step"}}`` or a list of such points per name), logged
    to the active run as ``<prefix>/<name>``, as every metric of the project is named (kedro-mlflow's own
    dataset writes ``<prefix>.<name>``). Loading reads them back from the active run."""

    def __init__(self, prefix: str, metadata: dict[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.metadata = metadata

    def load(self) -> dict[str, list[dict[str, float]]]:
        if active_run_id_or_none() is None:
            raise DatasetError(f"metrics '{self.prefix}/*' are read from the active MLflow run, and none is active")
        return read_metric_points(self.prefix)

    def save(self, data: Mapping[str, Any]) -> None:
        if active_run_id_or_none() is not None:
            log_metric_points(self.prefix, data)

    def _exists(self) -> bool:
        return active_run_id_or_none() is not None and bool(read_metric_points(self.prefix))

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self.prefix}
