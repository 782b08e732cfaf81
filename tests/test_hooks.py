"""The validation hook hands nodes the validated parameters of the real configuration."""

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from htr_pipeline import settings
from htr_pipeline.config import effective_parameters, validate_parameters
from htr_pipeline.hooks import ParameterValidationHook
from tests.conftest import PROJECT_ROOT


def _catalog_with(parameters: dict) -> DataCatalog:
    """A catalog holding parameters the way Kedro does: ``parameters`` and ``params:<path>`` at every depth."""
    catalog = DataCatalog()
    catalog["parameters"] = parameters

    def add(values: dict, prefix: str) -> None:
        for key, value in values.items():
            catalog[f"params:{prefix}{key}"] = value
            if isinstance(value, dict):
                add(value, f"{prefix}{key}.")

    add(parameters, "")
    return catalog


def test_the_real_base_parameters_with_explicit_nulls_pass_through_the_hook():
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), env="base", **settings.CONFIG_LOADER_ARGS)
    parameters = loader["parameters"]
    assert parameters["training"]["losses"]["ctc_ceiling"] is None  # the case that once broke the hook
    catalog = _catalog_with(parameters)
    ParameterValidationHook().after_catalog_created(catalog)
    config = validate_parameters(parameters)
    effective = effective_parameters(config)
    assert catalog.load("parameters") == effective
    assert catalog.load("params:training") == config.training
    assert catalog.load("params:training").model_dump(mode="json") == effective["training"]
    assert catalog.load("params:training.losses.ctc_ceiling") is None
    assert catalog.load("params:evaluation.beam_search") is None


def test_defaults_missing_from_the_file_are_filled_in():
    catalog = _catalog_with({"data": {"sources": [{"kind": "line_folder", "path": "x"}]}})
    ParameterValidationHook().after_catalog_created(catalog)
    assert catalog.load("params:data").image_height == 64
    assert catalog.load("params:training.epochs") == 10
