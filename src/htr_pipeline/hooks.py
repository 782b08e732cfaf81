"""Project hooks: validate every parameter before any node runs, and name MLflow runs after their pipelines."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import click
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES, register_pipelines
from htr_pipeline.project_paths import mlflow_ui_command, project_relative
from htr_pipeline.run_summary import RunResults, mlflow_run_url, run_summary_lines
from htr_pipeline.tracking import move_artifact_locations

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
