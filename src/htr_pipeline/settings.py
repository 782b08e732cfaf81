"""Kedro project settings: the hooks, and the config loader of ``project_config.py``."""

from htr_pipeline.hooks import MissingInputsHook, MlflowRunNameHook, ParameterValidationHook
from htr_pipeline.project_config import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

HOOKS = (ParameterValidationHook(), MissingInputsHook(), MlflowRunNameHook())

__all__ = ["CONFIG_LOADER_ARGS", "CONFIG_LOADER_CLASS", "HOOKS"]
