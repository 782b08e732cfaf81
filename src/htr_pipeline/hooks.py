"""Project hooks: validate every parameter before any node runs, log the validated config to MLflow, name MLflow
runs after their pipelines, and stop early when a pipeline's stored inputs do not exist."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import click
import mlflow
import numpy as np
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
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
    link_diagnostics_run,
    log_diagnostics,
    log_diagnostics_summary,
    log_evaluation,
    log_inference,
    log_models,
    log_parameters,
    move_artifact_locations,
    register_generator,
    tag_run,
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
        config = validate_parameters(_plain(catalog["parameters"].load()))
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

    @staticmethod
    def _record_evaluation(inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Into the evaluation run, linked both ways to the training run; with the models when asked for."""
        images = {"plots": outputs["evaluation_plots"], "gallery": outputs["evaluation_gallery"]}
        summary = outputs["evaluation_summary"]
        log_evaluation(summary, outputs["evaluation_report"], images, summary["evaluated_mlflow_run_id"])
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
