import pytest
import yaml
from kedro.io import DataCatalog

from htr_pipeline.config import ConfigError, DataConfig, validate_parameters
from htr_pipeline.hooks import ParameterValidationHook
from tests.conftest import small_synthetic_parameters


def test_default_parameters_validate_and_fill_defaults():
    config = validate_parameters(small_synthetic_parameters())
    assert config.data.image_height == 32
    assert config.data.max_reject_fraction == 0.05
    assert config.data.sources[0].style.slant_degrees == (-12.0, 12.0)


def test_unknown_key_names_its_path_and_the_closest_key():
    parameters = small_synthetic_parameters()
    parameters["data"]["image_heigth"] = 64
    with pytest.raises(ConfigError) as error:
        validate_parameters(parameters)
    assert "data.image_heigth: unknown key" in str(error.value)
    assert "Did you mean 'image_height'?" in str(error.value)


def test_misplaced_key_says_where_it_belongs():
    parameters = small_synthetic_parameters()
    parameters["data"]["sources"][0]["max_width"] = 300
    with pytest.raises(ConfigError) as error:
        validate_parameters(parameters)
    message = str(error.value)
    assert "data.sources[0].max_width: unknown key" in message
    assert "It belongs at: data.max_width" in message


def test_unknown_diagnostics_key_is_rejected_and_a_bad_verdict_named():
    parameters = small_synthetic_parameters()
    parameters["diagnostics"] = {"run_ids": "abc"}
    with pytest.raises(ConfigError, match=r"diagnostics\.run_ids: unknown key"):
        validate_parameters(parameters)
    parameters["diagnostics"] = {"fail_on": "problems"}
    with pytest.raises(ConfigError, match=r"diagnostics\.fail_on"):
        validate_parameters(parameters)


def test_the_previous_systems_early_stopping_flag_is_rejected_not_turned_off():
    # The previous system's launcher read `early_stopping: true, patience: 15` and logged early_stopping False,
    # patience 0.
    parameters = small_synthetic_parameters()
    parameters["training"] = {"early_stopping": True, "patience": 15}
    with pytest.raises(ConfigError) as error:
        validate_parameters(parameters)
    message = str(error.value)
    assert (
        "training.early_stopping: expected a mapping with keys {min_delta, patience, restore_best_weights}" in message
    )
    assert "training.patience: unknown key. It belongs at: " in message
    assert "training.early_stopping.patience" in message.split("training.patience: unknown key.")[1]


def test_early_stopping_as_a_mapping_is_applied():
    parameters = small_synthetic_parameters()
    parameters["training"] = {"early_stopping": {"patience": 15, "min_delta": 0.01}}
    stopping = validate_parameters(parameters).training.early_stopping
    assert (stopping.patience, stopping.min_delta, stopping.restore_best_weights) == (15, 0.01, True)


def test_unknown_top_level_section_is_rejected():
    parameters = small_synthetic_parameters()
    parameters["evaluate"] = {}
    with pytest.raises(ConfigError, match=r"evaluate: unknown key.*'evaluation'"):
        validate_parameters(parameters)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"split_fractions": {"train": 0.5, "valid": 0.1, "test": 0.1}}, "must be 1.0"),
        ({"image_height": 4}, "data.image_height"),
        ({"sources": []}, "data.sources"),
    ],
)
def test_bad_values_name_their_key(change, expected):
    parameters = small_synthetic_parameters()["data"] | change
    with pytest.raises(ConfigError, match=expected):
        validate_parameters({"data": parameters})


def test_duplicate_source_names_are_rejected():
    source = small_synthetic_parameters()["data"]["sources"][0]
    with pytest.raises(ValueError, match="two sources are named 'synthetic'"):
        DataConfig.model_validate({"sources": [source, source]})


def test_unknown_source_kind_is_rejected():
    with pytest.raises(ConfigError, match=r"data.sources\[0\]"):
        validate_parameters({"data": {"sources": [{"kind": "pdf_folder", "path": "x"}]}})


def test_data_parallel_fine_tuning_is_refused_with_what_to_set():
    parameters = small_synthetic_parameters()
    parameters["training"] = {"devices": 2, "recognizer_during_gan": "fine_tune"}
    with pytest.raises(ConfigError, match="set recognizer_during_gan: frozen or devices: 1"):
        validate_parameters(parameters)
    parameters["training"] = {"devices": 2, "speed": {"channels_last": True, "compile": False}}
    assert validate_parameters(parameters).training.devices == 2


@pytest.mark.parametrize("value", yaml.safe_load("[.inf, -.inf, .nan]"))
def test_every_float_is_finite(value):
    """As a parameters file spells them (``lr_generator: .inf``)."""
    parameters = small_synthetic_parameters()
    parameters["training"] = {"optimizer": {"lr_generator": value}}
    with pytest.raises(ConfigError, match=r"training\.optimizer\.lr_generator: Input should be a finite number"):
        validate_parameters(parameters)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("training", "resume_from"),
        ("training", "recognizer_checkpoint"),
        ("evaluation", "checkpoint"),
        ("inference", "checkpoint"),
        ("diagnostics", "checkpoint"),
    ],
)
def test_a_missing_checkpoint_file_is_named_at_validation(tmp_path, section, key):
    parameters = small_synthetic_parameters()
    parameters[section] = {key: str(tmp_path / "runs" / "lats.pt")}
    with pytest.raises(
        ConfigError, match=rf"{section}\.{key}: checkpoint file '.*lats\.pt' \(resolved: '/.*'\) does not"
    ):
        validate_parameters(parameters)


def test_a_run_id_or_an_existing_checkpoint_passes_validation(tmp_path):
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"checked later, when loaded")
    parameters = small_synthetic_parameters()
    parameters["training"] = {"resume_from": str(checkpoint)}
    parameters["evaluation"] = {"checkpoint": "0123456789abcdef0123456789abcdef"}
    validate_parameters(parameters)


def test_the_hook_stops_on_a_missing_checkpoint_before_any_node(tmp_path):
    parameters = small_synthetic_parameters()
    parameters["training"] = {"resume_from": "data/06_models/nowhere/last.pt"}
    catalog = DataCatalog()
    catalog["parameters"] = parameters
    with pytest.raises(ConfigError, match=r"training\.resume_from: checkpoint file 'data/06_models/nowhere/last\.pt'"):
        ParameterValidationHook().after_catalog_created(catalog)
