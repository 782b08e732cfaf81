"""The search space is checked against the schema before any training: keys, values, grid combinations, and what
stage 1 reads, so trials that leave it unchanged share it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from htr_pipeline.config import (
    ConfigError,
    SweepConfig,
    TrainingConfig,
    check_key_path,
    effective_parameters,
    validate_parameters,
    with_overrides,
)
from htr_pipeline.experiments.space import (
    GAN_ONLY_TRAINING_KEYS,
    baseline_values,
    check_sweep,
    configuration_label,
    grid_points,
    stage_one_key,
    trial_config,
    trial_parameters,
)
from tests.conftest import small_synthetic_parameters
from tests.data.test_real_paper import write_page_pairs


@pytest.fixture
def base() -> dict:
    return effective_parameters(validate_parameters(small_synthetic_parameters()))


def _sweep(**settings) -> SweepConfig:
    return SweepConfig.model_validate(
        {"space": {"training.losses.weights.ctc": {"choices": [1.0, 3.0]}}, "seeds": [1, 2], **settings}
    )


def test_a_misspelt_key_fails_before_any_training_naming_the_closest_valid_one(base):
    sweep = _sweep(space={"training.losses.weights.ctcc": {"choices": [1.0, 3.0]}})
    with pytest.raises(ConfigError) as error:
        check_sweep(sweep, base)
    message = str(error.value)
    assert message.startswith("Invalid sweep (1 problem), nothing was trained:")
    assert "sweep.space['training.losses.weights.ctcc']" in message
    assert "Did you mean 'training.losses.weights.ctc'?" in message

    with pytest.raises(ConfigError, match=r"sweep\.fixed\['training\.epoch'\].*Did you mean 'training\.epochs'"):
        check_sweep(_sweep(fixed={"training.epoch": 1}), base)


def test_keys_a_trial_cannot_change_are_refused_with_the_reason(base):
    sweep = _sweep(space={"data.seed": {"choices": [1, 2]}, "training.gan_seed": {"choices": [1, 2]}})
    with pytest.raises(ConfigError) as error:
        check_sweep(sweep, base)
    message = str(error.value)
    assert "sweep.space['data.seed']: a sweep cannot set it: a sweep trains every trial on one ingested" in message
    assert "sweep.space['training.gan_seed']: a sweep cannot set it: sweep.seeds sets it" in message


def test_every_value_and_every_grid_combination_is_validated(base):
    impossible = _sweep(space={"training.epochs": {"low": 0, "high": 2, "step": 1}})
    with pytest.raises(ConfigError, match=r"sweep\.space\['training\.epochs'\] value 0: training\.epochs"):
        check_sweep(impossible, base)
    # Each value alone is valid; together they are not (the judge's seed may not equal training.seed).
    clash = _sweep(space={"training.seed": {"choices": [5, 7]}, "training.judge.seed": {"choices": [7, 9]}})
    with pytest.raises(ConfigError, match=r"combination \{'training.seed': 7, 'training.judge.seed': 7\}"):
        check_sweep(clash, base)


def test_the_judge_objective_needs_a_judge(base):
    with pytest.raises(ConfigError, match="objective judge_cer reads the judge's CER"):
        check_sweep(_sweep(fixed={"training.judge": None}), base)
    check_sweep(_sweep(fixed={"training.judge": None}, objective="psnr"), base)


def test_a_study_of_seeds_alone_trains_the_configured_settings_once_per_seed(base):
    seeds_only = _sweep(space={}, seeds=[42, 43, 44])
    check_sweep(seeds_only, base)
    assert grid_points(seeds_only) == [{}] and baseline_values(base, seeds_only) == {}
    assert configuration_label({}, {}) == "baseline"
    # conf/local's `space: {}` would merge with conf/base's space; `space: null` empties it.
    assert SweepConfig.model_validate({"space": None, "seeds": [42, 43]}).space == {}
    with pytest.raises(ConfigError, match=r"(?s)sweep.space is empty.*sampler: grid and two seeds or more"):
        check_sweep(_sweep(space={}, seeds=[42]), base)
    with pytest.raises(ConfigError, match=r"sweep\.space is empty"):
        check_sweep(_sweep(space={}, sampler="random", trials=2), base)


def test_the_page_objective_needs_real_page_pairs_to_validate_on(base, tmp_path):
    with pytest.raises(ConfigError) as error:
        check_sweep(_sweep(objective="page_f_measure"), base)
    assert (
        "sweep.objective page_f_measure reads the valid split's real pages (val/page_f_measure), and "
        "data.real_paper.folders has no folder of kind page_pairs: add one, or objective judge_cer"
    ) in str(error.value)
    pairs = write_page_pairs(tmp_path / "pairs", ["p0", "p1", "p2"])
    with_pages = with_overrides(
        base, {"data.real_paper": {"folders": [{"kind": "page_pairs", "name": "pairs", "path": str(pairs)}]}}
    )
    check_sweep(_sweep(objective="page_f_measure"), effective_parameters(validate_parameters(with_pages)))
    # Pages alone (no judge) are enough for it.
    check_sweep(
        _sweep(objective="page_f_measure", fixed={"training.judge": None}),
        effective_parameters(validate_parameters(with_pages)),
    )


def test_the_schema_refuses_impossible_sweep_settings():
    with pytest.raises(ValidationError, match="grid sampler needs choices or a step"):
        SweepConfig.model_validate({"space": {"training.optimizer.lr_generator": {"low": 1e-4, "high": 1e-2}}})
    with pytest.raises(ValidationError, match=r"set sweep\.trials"):
        SweepConfig.model_validate({"sampler": "tpe"})
    with pytest.raises(ValidationError, match="pruning compares one figure"):
        SweepConfig.model_validate({"objective": "pareto", "pruning": {}})
    with pytest.raises(ValidationError, match="page_f_measure is measured on the valid split's real pages"):
        SweepConfig.model_validate({"objective": "page_f_measure", "objective_split": "test"})
    with pytest.raises(ValidationError, match="log scale or in steps"):
        SweepConfig.model_validate({"space": {"training.epochs": {"low": 1, "high": 4, "step": 1, "log": True}}})
    assert (
        SweepConfig.model_validate({"space": {"training.epochs": {"low": 1, "high": 3, "step": 1}}})
        .space["training.epochs"]
        .is_integer
    )


def test_grid_and_baseline(base):
    sweep = _sweep(
        space={
            "training.losses.weights.ctc": {"choices": [1.0, 3.0]},
            "training.epochs": {"low": 1, "high": 3, "step": 2},
        },
        fixed={"training.batch_size": 2},
    )
    check_sweep(sweep, base)
    assert grid_points(sweep) == [
        {"training.losses.weights.ctc": 1.0, "training.epochs": 1},
        {"training.losses.weights.ctc": 1.0, "training.epochs": 3},
        {"training.losses.weights.ctc": 3.0, "training.epochs": 1},
        {"training.losses.weights.ctc": 3.0, "training.epochs": 3},
    ]
    defaults = baseline_values(base, sweep)
    assert defaults == {"training.losses.weights.ctc": 1.0, "training.epochs": 2}
    assert configuration_label({"training.losses.weights.ctc": 1.0, "training.epochs": 2}, defaults) == "baseline"
    assert configuration_label({"training.losses.weights.ctc": 3.0, "training.epochs": 2}, defaults) == (
        "training.losses.weights.ctc=3.0"
    )
    config = trial_config(base, sweep, {"training.losses.weights.ctc": 3.0, "training.epochs": 3}, seed=2)
    assert (config.training.losses.weights.ctc, config.training.epochs) == (3.0, 3)
    assert (config.training.batch_size, config.training.gan_seed, config.training.seed) == (2, 2, 42)
    parameters = trial_parameters(config)
    assert set(parameters) == {"training", "evaluation"}
    assert parameters["training"]["losses"]["weights"]["ctc"] == 3.0


def test_stage_one_is_shared_by_trials_that_change_only_the_gan(base):
    sweep = _sweep()
    key = stage_one_key(trial_config(base, sweep, {"training.losses.weights.ctc": 1.0}, 1), "data")
    for values, seed in (
        ({"training.losses.weights.ctc": 3.0}, 2),
        ({"training.optimizer.lr_generator": 0.01}, 1),
        ({"training.generator.channels": [8, 16, 32]}, 1),  # same padded width multiple as the default three levels
        ({"training.epochs": 3}, 1),
    ):
        assert stage_one_key(trial_config(base, sweep, values, seed), "data") == key, values
    for values in (
        {"training.seed": 5},
        {"training.recognizer_pretraining.epochs": 3},
        {"training.judge.seed": 5},
        {"training.optimizer.gradient_clip_norm": 0.5},  # stage 1 clips its gradients with it too
        {"training.generator.channels": [8, 16, 32, 64]},  # a fourth level pads stage 1's batches wider
    ):
        assert stage_one_key(trial_config(base, sweep, values, 1), "data") != key, values
    assert stage_one_key(trial_config(base, sweep, {}, 1), "other data") != key


def test_gan_only_keys_are_settings_of_the_schema():
    for key in GAN_ONLY_TRAINING_KEYS:
        check_key_path(f"training.{key}", "GAN_ONLY_TRAINING_KEYS")
    assert "seed" not in GAN_ONLY_TRAINING_KEYS and "recognizer" not in GAN_ONLY_TRAINING_KEYS
    assert TrainingConfig().gan_seed is None


def test_overrides_set_dotted_keys_as_kedro_params_do():
    parameters = {"training": {"adaptive_balancing": None, "seed": 3}}
    assert with_overrides(parameters, {"training.adaptive_balancing.adaptation_rate": 0.2}) == {
        "training": {"adaptive_balancing": {"adaptation_rate": 0.2}, "seed": 3}
    }
    with pytest.raises(ConfigError, match=r"training\.seed\.x: 'training\.seed' holds a value"):
        with_overrides(parameters, {"training.seed.x": 1})
    assert parameters == {"training": {"adaptive_balancing": None, "seed": 3}}  # not modified in place
