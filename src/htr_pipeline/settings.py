"""Kedro project settings: the hooks, and the config loader of ``project_config.py``."""

import htr_pipeline.quiet_warnings  # noqa: F401  (first: it silences library warnings before mlflow is imported)
from htr_pipeline.hooks import ConsistentVersionsHook, MlflowRunHook, ParameterValidationHook, RunSummaryHook
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

_PARAMETERS = ParameterValidationHook()

# The order the hooks act in is set by their own `tryfirst` marks, never by the order of this tuple (pluggy calls
# hooks of equal rank last-registered first, and none of these depends on that):
#   after_context_created   parameters validated (tryfirst), then the MLflow store opened (MlflowRunHook)
#   after_catalog_created   each node's validated section put in the catalog (tryfirst)
#   before_pipeline_run     stored inputs checked and pinned to one complete run (tryfirst), then the MLflow run
#                           started, named and given its params (MlflowRunHook)
#   after_dataset_saved     completion records written; the summary notes what was saved
#   after_pipeline_run      the summary block printed (tryfirst), then the MLflow run ended (MlflowRunHook); the
#   on_pipeline_error       same, the run ending FAILED
# What is logged to MLflow besides the params is declared in conf/base/catalog.yml (datasets/logged.py).
# kedro-mlflow's own hook is replaced by MlflowRunHook, a subclass of it.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # its distribution name, as pluggy lists it
HOOKS = (_PARAMETERS, ConsistentVersionsHook(), MlflowRunHook(_PARAMETERS), RunSummaryHook())

__all__ = ["CONFIG_LOADER_ARGS", "CONFIG_LOADER_CLASS", "DISABLE_HOOKS_FOR_PLUGINS", "HOOKS"]
