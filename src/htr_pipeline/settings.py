"""Kedro project settings: the hooks, and the config loader of ``project_config.py``."""

import htr_pipeline.quiet_warnings  # noqa: F401  (first: it silences library warnings before mlflow is imported)
from htr_pipeline.hooks import (
    ConsistentVersionsHook,
    MissingInputsHook,
    MlflowRunNameHook,
    MlflowRunStateHook,
    MovedProjectHook,
    ParameterValidationHook,
    RunRecordHook,
    RunSummaryHook,
    ValidatedParamsMlflowHook,
)
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

_PARAMETER_VALIDATION = ParameterValidationHook()

# kedro-mlflow's own hook is replaced by ValidatedParamsMlflowHook, registered last as the plugin would be.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # its distribution name, as pluggy lists it
HOOKS = (
    _PARAMETER_VALIDATION,
    MissingInputsHook(),
    MlflowRunNameHook(),
    RunRecordHook(),
    ConsistentVersionsHook(),
    MlflowRunStateHook(),
    RunSummaryHook(),
    MovedProjectHook(),
    ValidatedParamsMlflowHook(_PARAMETER_VALIDATION),
)

__all__ = ["CONFIG_LOADER_ARGS", "CONFIG_LOADER_CLASS", "DISABLE_HOOKS_FOR_PLUGINS", "HOOKS"]
