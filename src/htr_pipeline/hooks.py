"""Project hooks: validate every parameter before any node runs, and name MLflow runs after their pipelines."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import click
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES, register_pipelines

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
