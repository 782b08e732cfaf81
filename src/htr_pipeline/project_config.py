"""How this Kedro project reads its ``conf/``: the loader class, its arguments, and the project root resolver.

``settings.py`` hands these to Kedro; ``python -m htr_pipeline.bench`` reads the same parameters with them
without importing the hooks and pipelines that ``settings.py`` registers.
"""

from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException, OmegaConfigLoader
from kedro.utils import find_kedro_project
from omegaconf import OmegaConf


def project_root() -> str:
    """Absolute path of the Kedro project kedro runs in (used for the MLflow sqlite store)."""
    root = find_kedro_project(Path.cwd())
    if root is None:
        raise RuntimeError(f"{Path.cwd()} is not inside a Kedro project; run kedro from the project folder")
    return Path(root).resolve().as_posix()


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


CONFIG_LOADER_CLASS = LocalOverPresetConfigLoader
CONFIG_LOADER_ARGS: dict[str, Any] = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    "custom_resolvers": {"project_root": project_root},
}
