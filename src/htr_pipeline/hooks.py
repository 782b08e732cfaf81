"""Project hooks: validate every parameter before any node runs, name MLflow runs after their pipelines, read
only complete versions, and keep MLflow run states true to what happened."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import click
import mlflow
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.pipeline import Pipeline
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig

from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES, register_pipelines
from htr_pipeline.tracking import finish_continued_run, mark_dead_runs_killed, store_creation_lock, tag_run_process

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Validates the whole parameters tree, then hands nodes (and MLflow) the validated, effective values.

    Every ``params:<path>`` entry of the catalog is replaced by its validated value, defaults included, so
    what a node receives and what kedro-mlflow logs is exactly what runs.
    """

    @hook_impl(tryfirst=True)
    def after_catalog_created(self, catalog: DataCatalog) -> None:
        config = validate_parameters(catalog.load("parameters"))
        effective = effective_parameters(config)
        for name, value in [("parameters", effective), *((f"params:{p}", v) for p, v in _nested_items(effective))]:
            if name not in catalog:
                catalog[name] = value  # a default the parameters file did not spell out
            elif catalog.load(name) != value:
                if value is None:
                    catalog[name] = value  # Kedro datasets refuse to save None
                else:
                    catalog.save(name, value)  # the parameter's dataset now holds the validated value
        logger.info("Parameters validated: %s", ", ".join(sorted(effective)))


def _nested_items(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, Mapping):
            yield from _nested_items(value, f"{path}.")


class MlflowRunNameHook:
    """Names the MLflow run after the pipelines that ran (``__default__`` spelt out)."""

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        spelt = [part for name in names for part in (DEFAULT_PIPELINES if name == "__default__" else (name,))]
        mlflow.set_tag("mlflow.runName", "+".join(spelt))
        mlflow.set_tag("kedro.env", run_params.get("env") or "local")


class MissingInputError(click.ClickException):
    """A pipeline's input has never been produced; the message names the command that produces it."""


class MissingInputsHook:
    """Before anything runs, check that every stored input of the pipeline exists; otherwise stop with one line
    naming the pipeline to run first, instead of a stack trace about a missing file."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        missing = [
            name
            for name in sorted(pipeline.inputs())
            if not name.startswith("params:") and name != "parameters" and not catalog.exists(name)
        ]
        if not missing:
            return
        producers = {
            producer
            for name in missing
            for producer, candidate in register_pipelines().items()
            if producer != "__default__" and name in candidate.all_outputs()
        }
        commands = " and ".join(f"`kedro run --pipeline={producer}`" for producer in sorted(producers))
        raise MissingInputError(
            f"{', '.join(missing)} not found: no run has produced {'it' if len(missing) == 1 else 'them'} yet. "
            f"Run {commands or 'the pipeline that produces them'} first, or `kedro run` for the whole main job."
        )


RECORDED_PIPELINES: dict[str, str] = {"data_ingestion": "ingestion_record", "training": "training_record"}
"""Pipelines whose outputs later pipelines read only as one complete set, and the record each such run writes
once every one of its versioned outputs is saved (conf/base/catalog.yml)."""


class ConsistentVersionsHook:
    """Later pipelines read the outputs of one complete ingestion (and one complete training), never a mix.

    Kedro saves every output of a run under that run's one save version, and loads each dataset's newest
    version on its own. So a run writes its record (``ingestion_record``, ``training_record``) last, once all
    its versioned outputs are saved; a pipeline that reads those outputs loads all of them at the version of
    the newest record. A version without a record (a run killed, or one still writing) is never read; a WARNING
    names it. Versions given with ``--load-versions`` are left as given.
    """

    def __init__(self) -> None:
        self._saved: set[str] = set()
        self._read: set[str] = set()
        self._recorded: set[str] = set()
        self._catalog = DataCatalog()

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        self._saved, self._read, self._recorded = set(), set(pipeline.inputs()), set()
        self._catalog = catalog
        given = set(run_params.get("load_versions") or {})
        for producer, record_name in RECORDED_PIPELINES.items():
            read = sorted((pipeline.inputs() & _versioned_outputs(producer, catalog)) - given)
            if read:
                _pin_to_newest_record(producer, record_name, read, catalog)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.add(dataset_name)
        for producer, record_name in RECORDED_PIPELINES.items():
            outputs = _versioned_outputs(producer, self._catalog)
            if record_name in self._recorded or dataset_name not in outputs or not outputs <= self._saved:
                continue
            versions = _versions_of(self._saved | self._read, self._catalog)
            self._catalog.save(record_name, {"pipeline": producer, "versions": versions})
            self._recorded.add(record_name)


def _versioned_outputs(producer: str, catalog: DataCatalog) -> set[str]:
    """The outputs of the ``producer`` pipeline that the catalog versions (its record excluded)."""
    outputs = register_pipelines()[producer].all_outputs() - {RECORDED_PIPELINES[producer]}
    return {name for name in outputs if _save_version(catalog.get(name)) is not None}


def _save_version(dataset: Any) -> str | None:
    return dataset.resolve_save_version() if isinstance(dataset, AbstractVersionedDataset) else None


def _versions_of(names: set[str], catalog: DataCatalog) -> dict[str, str]:
    """The version each of ``names`` that is a recorded pipeline's output was read or written at: a run's
    provenance."""
    recorded = set().union(*(_versioned_outputs(producer, catalog) for producer in RECORDED_PIPELINES))
    return {name: catalog.get(name).resolve_load_version() for name in sorted(names & recorded)}


def _pin_to_newest_record(producer: str, record_name: str, read: list[str], catalog: DataCatalog) -> None:
    """Load every dataset in ``read`` at the version of the newest ``record_name``; warn of newer versions."""
    complete = catalog.get(record_name).list_versions(full_path=False)
    if not complete:
        logger.warning(
            "No complete %s run is recorded (%s): reading the latest version of %s, which may be incomplete. "
            "Run `kedro run --pipeline=%s` to make a complete one.",
            producer,
            record_name,
            ", ".join(read),
            producer,
        )
        return
    version = complete[0]
    unfinished = sorted(
        {newer for name in read for newer in catalog.get(name).list_versions(full_path=False) if newer > version}
    )
    if unfinished:
        logger.warning(
            "Ignoring %s version %s: that run did not finish (killed, failed, or still writing), so it has no "
            "%s; reading %s from the newest complete run, %s.",
            producer,
            ", ".join(unfinished),
            record_name,
            ", ".join(read),
            version,
        )
    catalog_logger = logging.getLogger(DataCatalog.__module__)
    level = catalog_logger.level
    catalog_logger.setLevel(logging.ERROR)  # its "Replacing dataset" WARNING: replacing is the point here
    try:
        for name in read:
            dataset = catalog.get(name)
            catalog[name] = catalog.get(name, version=Version(version, dataset.resolve_save_version()))
    finally:
        catalog_logger.setLevel(level)
    logger.info("Reading %s of the %s run %s", ", ".join(read), producer, version)


class MlflowRunStateHook:
    """MLflow run states that say what happened to the process.

    Before kedro-mlflow opens the store, the store is created under a file lock (two first-ever runs at once
    would race its migrations), and ``RUNNING`` runs of this host whose process is dead are marked ``KILLED``.
    Each run records its host and pid to make that possible. A run that a resumed training completed ends
    ``FINISHED``.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        if mlflow.active_run() is not None:
            return  # kedro-mlflow then takes the store of that run as it is
        try:
            config = KedroMlflowConfig.model_validate(context.config_loader["mlflow"])
        except MissingConfigException:
            return  # no mlflow.yml: kedro-mlflow warns and uses its defaults
        with store_creation_lock(config.server.mlflow_tracking_uri):
            config.setup(context)
        killed = mark_dead_runs_killed(mlflow.get_tracking_uri())
        if killed:
            logger.warning("Marked KILLED the MLflow runs whose process on this host is gone: %s", ", ".join(killed))

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        if mlflow.active_run() is not None:
            tag_run_process(mlflow.active_run().info.run_id)

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        summary = outputs.get("training_summary")
        active = mlflow.active_run()
        if summary is None or active is None or summary["mlflow_run_id"] == active.info.run_id:
            return
        finish_continued_run(summary["mlflow_run_id"])
        logger.info("MLflow run %s, continued by this resume, is FINISHED", summary["mlflow_run_id"])
