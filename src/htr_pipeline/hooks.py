"""Project hooks: validate every parameter before any node runs, log the validated config to MLflow, name MLflow
runs after their pipelines, stop early when a pipeline's stored inputs do not exist, read only complete
versions, and keep MLflow run states true to what happened."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import click
import mlflow
import numpy as np
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel

from htr_pipeline.config import (
    ProjectConfig,
    effective_parameters,
    flatten_as_logged,
    validate_parameters,
    validated_sections,
)
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES, register_pipelines
from htr_pipeline.project_paths import mlflow_ui_command, project_relative
from htr_pipeline.run_summary import RunResults, mlflow_run_url, run_summary_lines
from htr_pipeline.tracking import (
    CHECKPOINT_FOLDER_TAG,
    finish_continued_run,
    link_diagnostics_run,
    log_comparison,
    log_diagnostics,
    log_diagnostics_summary,
    log_evaluation,
    log_evaluation_samples,
    log_inference,
    log_models,
    log_parameters,
    log_sweep,
    mark_dead_runs_killed,
    move_artifact_locations,
    register_generator,
    store_creation_lock,
    tag_run,
    tag_run_process,
)

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Validates the whole parameters tree before any node runs, then hands every node its validated section.

    The tree is validated as soon as the context exists, so a bad key stops the run with one
    :class:`~htr_pipeline.config.ConfigError` naming it (before Kedro's own per-node type checks, whose messages
    do not name the closest valid key). Each ``params:<path>`` entry of the catalog then holds the validated
    value: a section or sub-section as its model from ``config.py``, defaults included (also for sections the
    parameters files leave out), so nodes never validate again and what they receive is exactly what runs.
    ``parameters`` holds the same config as plain data.
    """

    def __init__(self) -> None:
        self.config: ProjectConfig | None = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        self.config = validate_parameters(context.config_loader["parameters"])

    @hook_impl(tryfirst=True)
    def after_catalog_created(self, catalog: DataCatalog) -> None:
        # Validated once per context; a catalog built without one (a test, a notebook) is validated here.
        config = self.config if self.config is not None else validate_parameters(_plain(catalog["parameters"].load()))
        _hold(catalog, "parameters", effective_parameters(config))
        for path, value in validated_sections(config):
            _hold(catalog, f"params:{path}", value)
        self.config = config
        logger.info("Parameters validated: %s", ", ".join(ProjectConfig.model_fields))


def _hold(catalog: DataCatalog, name: str, value: Any) -> None:
    """Put ``value`` in the catalog's parameter dataset ``name`` quietly (``catalog.save`` logs a line per key,
    replacing a dataset warns): datasets refuse to save ``None``, so only a ``None`` that differs is replaced."""
    dataset = catalog.get(name)
    if dataset is None:
        catalog[name] = value
    elif value is not None:
        dataset.save(value)
    elif dataset.load() is not None:
        catalog[name] = value


def _plain(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as plain data: Kedro has already turned the sections typed in node signatures into models."""
    return {key: value.model_dump() if isinstance(value, BaseModel) else value for key, value in parameters.items()}


class ValidatedParamsMlflowHook(MlflowHook):
    """kedro-mlflow's hook (its run, its datasets), except for which params it logs.

    kedro-mlflow logs each node's raw ``params:`` inputs when the node starts. Here the run logs, once when it
    starts, the validated effective config of every section its pipeline reads, flattened by
    :func:`htr_pipeline.config.flatten_as_logged`, the rule the diagnostics audit compares with.
    ``settings.py`` registers this hook in place of the plugin's own.
    """

    def __init__(self, validation: ParameterValidationHook):
        super().__init__()
        self._validation = validation

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        super().before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        if self.run_id is None or self._validation.config is None:
            return
        effective = effective_parameters(self._validation.config)
        sections = sorted(
            {name.removeprefix("params:").split(".")[0] for name in pipeline.inputs() if _is_parameter(name)}
        )
        log_parameters(flatten_as_logged({section: effective[section] for section in sections}))

    @hook_impl
    def before_node_run(self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool) -> None:
        without_params = {name: value for name, value in inputs.items() if not _is_parameter(name)}
        super().before_node_run(node=node, catalog=catalog, inputs=without_params, is_async=is_async)


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


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


class RunRecordHook:
    """Records in MLflow what the nodes produced: nodes return data, and this hook hands it to ``tracking.py``.

    Driven by dataset names, so a node keeps its plain signature and a test can run it without a store:
    ``training_summary`` tags the training run with its checkpoint folder; ``audited_run`` links a diagnostics
    run to the run it audits; each ``diagnostics_<audit>_json`` (with its markdown and plot) and the diagnostics
    summary are logged to the diagnostics run; ``inference_summary`` to the inference run.
    """

    @hook_impl
    def after_node_run(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        if "evaluation_summary" in outputs:
            self._record_evaluation(inputs, outputs)
        if "training_summary" in outputs:
            summary = outputs["training_summary"]
            tag_run(summary["mlflow_run_id"], {CHECKPOINT_FOLDER_TAG: summary["checkpoint_folder"]})
        if "audited_run" in outputs:
            link_diagnostics_run(outputs["audited_run"].run_id, outputs["audited_run"].tracking_uri)
        for name, report in outputs.items():
            audit = _audit_of(name)
            if audit == "summary":
                log_diagnostics_summary(report, outputs["diagnostics_summary_markdown"])
            elif audit is not None:
                markdown = outputs[f"diagnostics_{audit}_markdown"]
                log_diagnostics(audit, report, markdown, outputs.get(f"diagnostics_{audit}_plot"), report["verdict"])
        if "inference_summary" in outputs:
            log_inference(outputs["inference_summary"])
        if "comparison_summary" in outputs:
            figures = {
                "validation_curves": outputs["comparison_validation_curves"],
                "cer_against_psnr": outputs["comparison_cer_against_psnr"],
            }
            log_comparison(
                outputs["comparison_summary"],
                outputs["comparison_report"],
                outputs["comparison_table"],
                outputs["comparison_latex"],
                figures,
            )
        if "sweep_summary" in outputs:
            log_sweep(outputs["sweep_summary"], outputs["sweep_trials"])

    @staticmethod
    def _record_evaluation(inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Into the evaluation run, linked both ways to the training run; with the models when asked for."""
        images = {"plots": outputs["evaluation_plots"], "gallery": outputs["evaluation_gallery"]}
        summary = outputs["evaluation_summary"]
        log_evaluation(summary, outputs["evaluation_report"], images, summary["evaluated_mlflow_run_id"])
        log_evaluation_samples(outputs["evaluation_samples"])
        if inputs["params:evaluation"].log_models:
            height = int(inputs["manifest"]["height"].iloc[0])
            example = np.ones((1, 1, height, 8 * height), dtype=np.float32)
            logged = log_models(inputs["evaluated_models"], example=example)
            if inputs["params:evaluation"].register_model is not None:
                register_generator(logged["generator"], inputs["params:evaluation"].register_model)


def _audit_of(dataset_name: str) -> str | None:
    """``diagnostics_<audit>_json`` -> ``<audit>`` (``summary`` for the summary); other names -> None."""
    if dataset_name.startswith("diagnostics_") and dataset_name.endswith("_json"):
        return dataset_name.removeprefix("diagnostics_").removesuffix("_json")
    return None


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
        self._outputs: dict[str, set[str]] = {}
        """Per recorded pipeline, its versioned outputs: found once per run, checked at every save."""
        self._catalog = DataCatalog()

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        self._saved, self._read, self._recorded = set(), set(pipeline.inputs()), set()
        self._catalog = catalog
        self._outputs = {producer: _versioned_outputs(producer, catalog) for producer in RECORDED_PIPELINES}
        given = set(run_params.get("load_versions") or {})
        for producer, record_name in RECORDED_PIPELINES.items():
            read = sorted((pipeline.inputs() & self._outputs[producer]) - given)
            if read:
                _pin_to_newest_record(producer, record_name, read, catalog)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.add(dataset_name)
        for producer, record_name in RECORDED_PIPELINES.items():
            outputs = self._outputs.get(producer, set())
            if record_name in self._recorded or dataset_name not in outputs or not outputs <= self._saved:
                continue
            recorded = set().union(*self._outputs.values())
            versions = _versions_of((self._saved | self._read) & recorded, self._catalog)
            self._catalog.save(record_name, {"pipeline": producer, "versions": versions})
            self._recorded.add(record_name)


def _versioned_outputs(producer: str, catalog: DataCatalog) -> set[str]:
    """The outputs of the ``producer`` pipeline that the catalog versions (its record excluded)."""
    outputs = register_pipelines()[producer].all_outputs() - {RECORDED_PIPELINES[producer]}
    return {name for name in outputs if _save_version(catalog.get(name)) is not None}


def _save_version(dataset: Any) -> str | None:
    return dataset.resolve_save_version() if isinstance(dataset, AbstractVersionedDataset) else None


def _versions_of(names: set[str], catalog: DataCatalog) -> dict[str, str]:
    """The version each of ``names`` (recorded pipelines' outputs) was read or written at: a run's provenance."""
    return {name: catalog.get(name).resolve_load_version() for name in sorted(names)}


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


class RunSummaryHook:
    """Ends every run with the block of ``run_summary``: the figures of the pipelines that ran, loud warnings
    for anything that looks like a failure, where the outputs are, and the MLflow run to open.

    Printed also when a node fails (a diagnostics audit reaching ``fail_on``), after what was saved so far.
    """

    SUMMARIES: ClassVar[dict[str, str]] = {
        "data": "dataset_report",
        "training": "training_summary",
        "evaluation": "evaluation_summary",
        "diagnostics": "diagnostics_summary_json",
        "inference": "inference_summary",
        "sweep": "sweep_summary",
        "comparison": "comparison_summary",
    }
    OUTPUTS = (
        "dataset_report_plot",
        "rejects",
        "training_summary",
        "evaluation_report",
        "evaluation_plots",
        "evaluation_gallery",
        "diagnostics_summary_markdown",
        "inference_outputs",
        "inference_results",
        "sweep_trials",
        "comparison_report",
        "comparison_table",
        "comparison_latex",
    )

    def __init__(self) -> None:
        self._saved: list[str] = []
        self._project_path = Path.cwd()
        self._mlflow_run_id: str | None = None
        self._mlflow_experiment_id: str | None = None
        self._mlflow_ui: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project_path = Path(context.project_path)
        self._mlflow_ui = context.config_loader["mlflow"].get("ui", {})

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        self._saved = []
        run = mlflow.active_run()
        self._mlflow_run_id = None if run is None else run.info.run_id
        self._mlflow_experiment_id = None if run is None else run.info.experiment_id

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.append(dataset_name)

    @hook_impl
    def after_pipeline_run(self, catalog: DataCatalog) -> None:
        self._print(catalog)

    @hook_impl
    def on_pipeline_error(self, catalog: DataCatalog) -> None:
        self._print(catalog)

    def _print(self, catalog: DataCatalog) -> None:
        # The dataset itself, not catalog.load: the block is not preceded by "Loading data from ..." lines.
        summaries = {key: catalog.get(name).load() for key, name in self.SUMMARIES.items() if name in self._saved}
        outputs = [
            (name, project_relative(_saved_path(catalog, name), self._project_path))
            for name in self.OUTPUTS
            if name in self._saved
        ]
        if "training" in summaries:
            outputs.insert(0, ("checkpoints", summaries["training"]["checkpoint_folder"]))
        if not summaries and not outputs:
            return
        results = RunResults(
            **summaries,
            outputs=outputs,
            mlflow_run_id=self._mlflow_run_id,
            mlflow_ui_command=mlflow_ui_command(self._project_path, self._mlflow_ui.get("port", "5000")),
            mlflow_run_url=None
            if self._mlflow_run_id is None
            else mlflow_run_url(
                self._mlflow_ui.get("host", "127.0.0.1"),
                self._mlflow_ui.get("port", "5000"),
                self._mlflow_experiment_id,
                self._mlflow_run_id,
            ),
        )
        for line in run_summary_lines(results):
            warning = line.startswith("WARNING")
            click.secho(line, fg="red" if warning else None, bold=warning)


def _saved_path(catalog: DataCatalog, name: str) -> str:
    """Where dataset ``name`` lies now: a versioned one in its newest version's folder, the one just saved."""
    dataset = catalog.get(name)
    if hasattr(dataset, "_get_load_path"):
        return str(dataset._get_load_path())
    return str(getattr(dataset, "_filepath", name))


class MovedProjectHook:
    """A project copied to another folder (laptop to GPU server and back) keeps reading its own MLflow artifacts
    and logs new runs into its own ``mlartifacts``, never into the original's: before kedro-mlflow opens the
    store, artifact locations recorded under the original folder are moved to this one."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        project = Path(context.project_path)
        experiment = context.config_loader["mlflow"]["tracking"]["experiment"]["name"]
        made_in = move_artifact_locations(project / "mlflow.db", project, experiment)
        if made_in is not None:
            logger.info("MLflow store copied from %s: its artifact locations now point into %s", made_in, project)
