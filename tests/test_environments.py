"""conf/base is the laptop default; conf/previous_system reproduces the previous system's data shape."""

import pytest
from kedro.config import OmegaConfigLoader

from htr_pipeline import settings
from htr_pipeline.config import validate_parameters
from tests.conftest import PROJECT_ROOT


def _parameters(env: str) -> dict:
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS)
    return loader["parameters"]


def test_base_is_a_small_synthetic_set_of_64_px_lines():
    config = validate_parameters(_parameters("base"))
    (source,) = config.data.sources
    assert source.kind == "synthetic" and config.data.image_height == 64
    assert source.lines_per_split.train + source.lines_per_split.valid + source.lines_per_split.test <= 2000


def test_previous_system_environment_has_its_runs_data_shape():
    config = validate_parameters(_parameters("previous_system"))
    (source,) = config.data.sources
    assert (config.data.image_height, config.data.max_width) == (128, 1024)
    assert (source.lines_per_split.train, source.lines_per_split.valid) == (4266, 473)
    assert config.data.max_label_length == 128
    assert config.data.seed == 42


@pytest.mark.parametrize("env", ["base", "previous_system"])
def test_every_environment_validates(env):
    validate_parameters(_parameters(env))


def test_real_paper_preset_asks_for_your_material_then_validates_with_the_example():
    from omegaconf import OmegaConf

    from htr_pipeline.config import ConfigError

    preset = _parameters("real_paper")
    with pytest.raises(ConfigError) as raised:
        validate_parameters(preset)
    assert "no source is configured" in str(raised.value) and "no paper folder is configured" in str(raised.value)

    example = OmegaConf.load(PROJECT_ROOT / "conf" / "local.example" / "real_paper.yml")
    config = validate_parameters(OmegaConf.to_container(OmegaConf.merge(preset, example)))
    assert config.data.clean_scans == "paper_removed" and config.data.real_paper.probability == 1.0
    assert [folder.kind for folder in config.data.real_paper.folders] == ["page_pairs", "page_scans"]
    assert config.evaluation.real_test.page_pairs.include == "^2011-", "DIBCO 2011, the real test, is held out"
    assert config.data.real_paper.folders[0].include == "^20(09|10)-"
