"""The project's four Kedro hooks (``settings.py`` registers them and says in which order they act):

- :class:`ParameterValidationHook`: every parameter is validated before anything else happens, and each node
  receives its section as the validated model;
- :class:`ConsistentVersionsHook`: before a pipeline runs, every stored input it reads exists, and all of them are
  read at the version of one complete run; a run writes its completion record last;
- :class:`MlflowRunHook`: the MLflow run (kedro-mlflow's hook, whose place it takes): a store true to what
  happened (a copied project's artifacts, creation under a lock, dead runs ``KILLED``), the run's name, host and
  pid, and the validated config as its params;
- :class:`RunSummaryHook`: the block of figures, warnings and outputs a run ends with.

No hook looks for a dataset by its name. What goes to MLflow besides the params is declared in
``conf/base/catalog.yml`` (``mlflow:``, :mod:`htr_pipeline.datasets.logged`); what the summary block shows, by a
dataset's ``run_summary`` metadata; which record completes which pipeline, by a record's ``completes`` metadata.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import click
import mlflow
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines as registered_pipelines
from kedro.io import DataCatalog
from kedro.io.core import AbstractVersionedDataset, Version, is_parameter
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel, ConfigDict

from htr_pipeline.config import (
    ProjectConfig,
    effective_parameters,
    flatten_as_logged,
    validate_parameters,
    validated_sections,
)
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES
from htr_pipeline.project_paths import mlflow_ui_command, project_relative
from htr_pipeline.run_summary import RunResults, mlflow_run_url, run_failure, run_summary_lines
from htr_pipeline.tracking.run_logging import log_parameters
from htr_pipeline.tracking.store import (
    mark_dead_runs_killed,
    move_artifact_locations,
    store_creation_lock,
    tag_run_process,
)

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Validates the whole parameters tree before any node runs, then hands every node its validated section.

    The tree is validated as soon as the context exists, so a bad key stops the run with one
    :class:`~htr_pipeline.config.ConfigError` naming it (before Kedro's own per-node type checks, whose messages
    do not name the closest valid key, and before the MLflow store is opened). Each ``params:<path>`` entry of
    the catalog then holds the validated value: a section or sub-section as its model from ``config.py``,
    defaults included (also for sections the parameters files leave out), so nodes never validate again and
    what they receive is exactly what runs. ``parameters`` holds the same config as plain data.
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


class MissingInputError(Exception):
    """A pipeline's input has never been produced; the message names the command that produces it."""


class ConsistentVersionsHook:
    """Later pipelines read the outputs of one complete ingestion (and one complete training), never a mix, and
    a pipeline whose stored inputs were never produced stops before anything runs.

    Kedro saves every output of a run under that run's one save version, and loads each dataset's newest
    version on its own. So a run writes its completion record (the catalog entries whose metadata says
    ``completes: <pipeline>``: ``ingestion_record``, ``training_record``) last, once all that pipeline's
    versioned outputs are saved; a pipeline that reads those outputs loads all of them at the version of the
    newest record. A version without a record (a run killed, or one still writing) is never read; a WARNING
    names it. Versions given with ``--load-versions`` are left as given.
    """

    def __init__(self) -> None:
        self._saved: set[str] = set()
        self._read: set[str] = set()
        self._recorded: set[str] = set()
        self._records: dict[str, str] = {}
        """``{pipeline: its completion record}``, as the catalog declares them."""
        self._outputs: dict[str, set[str]] = {}
        """Per recorded pipeline, its versioned outputs: found once per run, checked at every save."""
        self._catalog = DataCatalog()

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts a run: a pipeline that cannot run leaves none behind
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        _stop_unless_inputs_exist(pipeline, catalog)
        self._saved, self._read, self._recorded = set(), set(pipeline.inputs()), set()
        self._catalog = catalog
        self._records = completion_records(catalog)
        self._outputs = {
            producer: _versioned_outputs(producer, record, catalog) for producer, record in self._records.items()
        }
        given = set(run_params.get("load_versions") or {})
        for producer, record in self._records.items():
            read = sorted((pipeline.inputs() & self._outputs[producer]) - given)
            if read:
                _pin_to_newest_record(producer, record, read, catalog)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.add(dataset_name)
        for producer, record in self._records.items():
            outputs = self._outputs.get(producer, set())
            if record in self._recorded or dataset_name not in outputs or not outputs <= self._saved:
                continue
            recorded = set().union(*self._outputs.values())
            versions = _versions_of((self._saved | self._read) & recorded, self._catalog)
            self._catalog.save(record, {"pipeline": producer, "versions": versions})
            self._recorded.add(record)


def completion_records(catalog: DataCatalog) -> dict[str, str]:
    """``{pipeline: record dataset}`` for every catalog entry whose metadata says ``completes: <pipeline>``."""
    records = {}
    for name in catalog:
        producer = (getattr(catalog.get(name), "metadata", None) or {}).get("completes")
        if producer is not None:
            if producer not in registered_pipelines:
                raise ValueError(f"catalog entry '{name}': completes '{producer}', which is not a pipeline")
            records[producer] = name
    return records


def _stop_unless_inputs_exist(pipeline: Pipeline, catalog: DataCatalog) -> None:
    """One line naming the pipeline to run first, instead of a stack trace about a missing file."""
    missing = [name for name in sorted(pipeline.inputs()) if not is_parameter(name) and not catalog.exists(name)]
    if not missing:
        return
    producers = {
        producer
        for name in missing
        for producer, candidate in registered_pipelines.items()
        if producer != "__default__" and name in candidate.all_outputs()
    }
    commands = " and ".join(f"`kedro run --pipeline={producer}`" for producer in sorted(producers))
    raise MissingInputError(
        f"{', '.join(missing)} not found: no run has produced {'it' if len(missing) == 1 else 'them'} yet. "
        f"Run {commands or 'the pipeline that produces them'} first, or `kedro run` for the whole main job."
    )


def _versioned_outputs(producer: str, record: str, catalog: DataCatalog) -> set[str]:
    """The outputs of the ``producer`` pipeline that the catalog versions (its record excluded)."""
    outputs = registered_pipelines[producer].all_outputs() - {record}
    return {name for name in outputs if _save_version(catalog.get(name)) is not None}


def _save_version(dataset: Any) -> str | None:
    return dataset.resolve_save_version() if isinstance(dataset, AbstractVersionedDataset) else None


def _versions_of(names: set[str], catalog: DataCatalog) -> dict[str, str]:
    """The version each of ``names`` (recorded pipelines' outputs) was read or written at: a run's provenance."""
    return {name: catalog.get(name).resolve_load_version() for name in sorted(names)}


def _pin_to_newest_record(producer: str, record: str, read: list[str], catalog: DataCatalog) -> None:
    """Load every dataset in ``read`` at the version of the newest ``record``; warn of newer versions."""
    complete = catalog.get(record).list_versions(full_path=False)
    if not complete:
        logger.warning(
            "No complete %s run is recorded (%s): reading the latest version of %s, which may be incomplete. "
            "Run `kedro run --pipeline=%s` to make a complete one.",
            producer,
            record,
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
            record,
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


class MlflowRunHook(MlflowHook):
    """kedro-mlflow's hook (its run, started and ended as kedro-mlflow does), with run states true to what
    happened to the process, and the validated config as the run's params. ``settings.py`` registers it in
    place of the plugin's own.

    Before kedro-mlflow opens the store, under a file lock beside an sqlite store (two first-ever runs at once
    would race its migrations): a store copied with its project (laptop to GPU server) is pointed at the copy's
    own ``mlartifacts``, and afterwards every ``RUNNING`` run of this host whose process is dead is marked
    ``KILLED``. Once kedro-mlflow has started a run, it is named after the pipelines that ran
    (``__default__`` spelt out), tagged with the Kedro environment, this host and this pid, and given as params
    the validated effective config of every section its pipeline reads, flattened by
    :func:`htr_pipeline.config.flatten_as_logged` (the rule the diagnostics config audit compares with), where
    kedro-mlflow would log each node's raw ``params:`` inputs.
    """

    def __init__(self, parameters: ParameterValidationHook):
        super().__init__()
        self._parameters = parameters

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        if mlflow.active_run() is not None:  # kedro-mlflow then takes the store of that run as it is
            super().after_context_created(context)
            return
        try:
            config = KedroMlflowConfig.model_validate(context.config_loader["mlflow"])
        except MissingConfigException:  # no mlflow.yml: kedro-mlflow warns and uses its defaults
            super().after_context_created(context)
            return
        tracking_uri, experiment = config.server.mlflow_tracking_uri, config.tracking.experiment.name
        with store_creation_lock(tracking_uri):
            made_in = (
                move_artifact_locations(tracking_uri, Path(context.project_path), experiment) if experiment else None
            )
            super().after_context_created(context)
        if made_in is not None:
            logger.info(
                "MLflow store copied from %s: its artifact locations now point into %s", made_in, context.project_path
            )
        killed = mark_dead_runs_killed(mlflow.get_tracking_uri())
        if killed:
            logger.warning("Marked KILLED the MLflow runs whose process on this host is gone: %s", ", ".join(killed))

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        super().before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        run = mlflow.active_run()
        if self.run_id is None or run is None:
            return  # tracking is disabled for this pipeline (mlflow.yml)
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        mlflow.set_tags(
            {
                "mlflow.runName": run_name(names),
                "kedro.env": run_params.get("env") or "local",
                "kedro_command": kedro_command_as_typed(sys.argv, run_params),
            }
        )
        tag_run_process(run.info.run_id)
        if self._parameters.config is not None:
            effective = effective_parameters(self._parameters.config)
            sections = sorted(
                {name.removeprefix("params:").split(".")[0] for name in pipeline.inputs() if _is_params(name)}
            )
            log_parameters(flatten_as_logged({section: effective[section] for section in sections}))

    @hook_impl
    def before_node_run(self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool) -> None:
        without_params = {name: value for name, value in inputs.items() if not is_parameter(name)}
        super().before_node_run(node=node, catalog=catalog, inputs=without_params, is_async=is_async)


def kedro_command_as_typed(argv: list[str], run_params: Mapping[str, Any]) -> str:
    """The ``kedro run`` command as it was typed (kedro-mlflow's own tag spells every pipeline ``--pipeline=``
    and leaves out ``--params`` and ``--env``); a session started from Python (a notebook, a test) gets the
    command that would run the same."""
    if argv and Path(argv[0]).name == "kedro":
        return shlex.join(["kedro", *argv[1:]])
    parts = ["kedro", "run"]
    if run_params.get("pipeline_names"):
        parts.append("--pipelines=" + ",".join(run_params["pipeline_names"]))
    if run_params.get("env"):
        parts.append(f"--env={run_params['env']}")
    runtime = flatten_as_logged(run_params.get("runtime_params") or {})
    if runtime:
        parts.append("--params=" + ",".join(f"{key}={value}" for key, value in runtime.items()))
    return shlex.join(parts)


def run_name(pipeline_names: Sequence[str]) -> str:
    """The MLflow run's name: the pipelines that ran (``__default__`` spelt out), in the order the registry lists
    them, whatever order they were named in (``kedro run --pipelines=a,b`` hands them over as a set)."""
    spelt = {part for name in pipeline_names for part in (DEFAULT_PIPELINES if name == "__default__" else (name,))}
    registered = [name for name in registered_pipelines if name != "__default__"]
    return "+".join(
        sorted(spelt, key=lambda name: (registered.index(name) if name in registered else len(registered), name))
    )


def _is_params(name: str) -> bool:
    """A ``params:<section>...`` input (the whole ``parameters`` dict names no section)."""
    return is_parameter(name) and name != "parameters"


class RunSummaryRole(BaseModel):
    """A dataset's ``run_summary`` metadata: what the block a run ends with shows of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    figures: (
        Literal["data", "training", "evaluation", "real_test", "diagnostics", "inference", "sweep", "comparison"] | None
    ) = None
    """The pipeline whose figures the block makes from this dataset's data."""
    listed: bool = False
    """Named under "Outputs", with where this run saved it (in the order the catalog declares)."""


class RunSummaryHook:
    """Ends every run with the block of ``run_summary``: the figures of the pipelines that ran, loud warnings
    for anything that looks like a failure, where the outputs are, and the MLflow run to open.

    Made from the datasets the run saved whose catalog entry has ``run_summary`` metadata
    (:class:`RunSummaryRole`). Printed also when a node fails (a diagnostics audit reaching ``fail_on``), after
    what was saved so far.
    """

    last_failure: str | None = None
    """Why the last run of this process did not give what it was asked for (``run_summary.run_failure``), else
    None: the ``run`` command (``cli.py``) exits with it as its one ``Error:`` line, after the block. A class
    attribute, as Kedro's settings may hand the session a copy of the hook."""

    def __init__(self) -> None:
        self._saved: list[str] = []
        self._project_path = Path.cwd()
        self._mlflow_ui: dict[str, Any] = {}
        self._expects_gain = {"evaluation": True, "inference": True}

        self._declared: list[str] = []
        """The catalog's entries and patterns, in the order ``catalog.yml`` declares them."""

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._project_path = Path(context.project_path)
        self._mlflow_ui = context.config_loader["mlflow"].get("ui", {})
        # The validated sections (ParameterValidationHook hands them over as their models).
        self._expects_gain = {section: _expects_gain(context.params.get(section)) for section in self._expects_gain}

    @hook_impl
    def after_catalog_created(self, conf_catalog: dict[str, Any]) -> None:
        self._declared = list(conf_catalog)

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._saved = []
        RunSummaryHook.last_failure = None

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.append(dataset_name)

    @hook_impl(tryfirst=True)  # while the MLflow run is active: MlflowRunHook (kedro-mlflow) ends it
    def after_pipeline_run(self, catalog: DataCatalog) -> None:
        self._print(catalog)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, catalog: DataCatalog) -> None:
        self._print(catalog)

    def _print(self, catalog: DataCatalog) -> None:
        roles = {name: _run_summary_role(name, catalog) for name in dict.fromkeys(self._saved)}
        # The dataset itself, not catalog.load: the block is not preceded by "Loading data from ..." lines.
        figures = {role.figures: catalog.get(name).load() for name, role in roles.items() if role.figures}
        listed = sorted(
            (name for name, role in roles.items() if role.listed), key=lambda name: self._position(name, catalog)
        )
        outputs = [(name, project_relative(saved_path(catalog.get(name)), self._project_path)) for name in listed]
        if "training" in figures:
            outputs.insert(0, ("checkpoints", figures["training"]["checkpoint_folder"]))
        if not figures and not outputs:
            return
        run = mlflow.active_run()
        port = self._mlflow_ui.get("port", "5000")
        session_run_id = None if run is None else run.info.run_id
        # A resume's epochs go into the run it continued: that is the run to open.
        shown_run_id = (figures.get("training") or {}).get("mlflow_run_id") or session_run_id
        results = RunResults(
            **figures,
            outputs=outputs,
            mlflow_run_id=shown_run_id,
            session_run_id=session_run_id,
            mlflow_ui_command=mlflow_ui_command(self._project_path, port),
            mlflow_run_url=None
            if run is None
            else mlflow_run_url(self._mlflow_ui.get("host", "127.0.0.1"), port, run.info.experiment_id, shown_run_id),
        )
        for line in run_summary_lines(results):
            warning = line.startswith("WARNING")
            click.secho(line, fg="red" if warning else None, bold=warning)
        RunSummaryHook.last_failure = run_failure(
            results, self._expects_gain["evaluation"], self._expects_gain["inference"]
        )

    def _position(self, name: str, catalog: DataCatalog) -> int:
        """Where ``name`` is declared in ``catalog.yml``: its own entry, or the pattern it matched."""
        declared = name if name in self._declared else catalog.config_resolver.match_dataset_pattern(name)
        return self._declared.index(declared) if declared in self._declared else len(self._declared)


def _expects_gain(section: Any) -> bool:
    """``expect_gain`` of a parameters section, validated model or mapping; true when it is not set."""
    return bool(
        section.get("expect_gain", True) if isinstance(section, Mapping) else getattr(section, "expect_gain", True)
    )


def _run_summary_role(name: str, catalog: DataCatalog) -> RunSummaryRole:
    metadata = getattr(catalog.get(name), "metadata", None) or {}
    try:
        return RunSummaryRole.model_validate(metadata.get("run_summary") or {})
    except ValueError as error:
        raise ValueError(f"catalog entry '{name}': run_summary metadata: {error}") from error


def saved_path(dataset: Any) -> str:
    """Where a versioned dataset's save of this run lies (its newest version's path, for a dataset that keeps
    its versions as Kedro does), through the datasets' public version methods."""
    version = dataset.resolve_save_version()
    return next(path for path in dataset.list_versions(full_path=True) if version in PurePosixPath(path).parts)
