"""Project hooks: validate every parameter before any node runs, and name MLflow runs after their pipelines."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog

from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.pipeline_registry import DEFAULT_PIPELINES

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
        catalog["parameters"] = effective
        for path, value in _nested_items(effective):
            catalog[f"params:{path}"] = value
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
