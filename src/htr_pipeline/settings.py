"""Kedro project settings: the hooks, and the config loader of ``project_config.py``."""

from htr_pipeline.hooks import (
    ConsistentVersionsHook,
    MissingInputsHook,
    MlflowRunNameHook,
    MlflowRunStateHook,
    ParameterValidationHook,
)
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

HOOKS = (
    ParameterValidationHook(),
    MissingInputsHook(),
    MlflowRunNameHook(),
    ConsistentVersionsHook(),
    MlflowRunStateHook(),
)

__all__ = ["CONFIG_LOADER_ARGS", "CONFIG_LOADER_CLASS", "HOOKS"]
