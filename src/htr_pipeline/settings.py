"""Kedro project settings."""

from pathlib import Path

from kedro.config import OmegaConfigLoader
from kedro.utils import find_kedro_project

from htr_pipeline.hooks import MissingInputsHook, MlflowRunNameHook, ParameterValidationHook


def project_root() -> str:
    """Absolute path of the Kedro project kedro runs in (used for the MLflow sqlite store)."""
    root = find_kedro_project(Path.cwd())
    if root is None:
        raise RuntimeError(f"{Path.cwd()} is not inside a Kedro project; run kedro from the project folder")
    return Path(root).resolve().as_posix()


HOOKS = (ParameterValidationHook(), MissingInputsHook(), MlflowRunNameHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    "custom_resolvers": {"project_root": project_root},
}
