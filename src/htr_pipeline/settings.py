"""Kedro project settings."""

from pathlib import Path

from kedro.config import MissingConfigException, OmegaConfigLoader
from omegaconf import OmegaConf

import htr_pipeline.quiet_warnings  # noqa: F401  (first: it silences library warnings before mlflow is imported)
from htr_pipeline import project_paths
from htr_pipeline.hooks import (
    MissingInputsHook,
    MlflowRunNameHook,
    MovedProjectHook,
    ParameterValidationHook,
    RunSummaryHook,
)


def project_root() -> str:
    """Absolute path of the Kedro project kedro runs in (used for the MLflow sqlite store)."""
    return project_paths.project_root().as_posix()


class LocalOverPresetConfigLoader(OmegaConfigLoader):
    """Kedro's loader, plus ``conf/local/parameters*`` over a preset environment.

    ``kedro run`` reads base + local; ``kedro run --env real_lines`` reads base + real_lines, and Kedro alone
    would then ignore ``conf/local``, where users keep their own ``data.sources``. Here the parameters of
    ``conf/local`` are merged last (deep merge, lists replaced, as the soft strategy does), so a preset holds the
    recipe and ``conf/local`` the data. ``--params`` still wins over both.
    """

    def __getitem__(self, key: str):
        config = super().__getitem__(key)
        run_env = self.env or self.default_run_env
        local = Path(self.conf_source) / self.default_run_env
        if key != "parameters" or run_env in (self.base_env, self.default_run_env) or not local.is_dir():
            return config
        local_only = OmegaConfigLoader(
            str(self.conf_source),
            base_env=self.default_run_env,
            default_run_env=self.default_run_env,
            config_patterns={"parameters": self.config_patterns["parameters"]},
        )
        try:
            local_parameters = local_only["parameters"]
        except MissingConfigException:
            return config
        return OmegaConf.to_container(OmegaConf.merge(config, local_parameters), resolve=True)


HOOKS = (ParameterValidationHook(), MissingInputsHook(), MlflowRunNameHook(), RunSummaryHook(), MovedProjectHook())

CONFIG_LOADER_CLASS = LocalOverPresetConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    "custom_resolvers": {"project_root": project_root},
}
