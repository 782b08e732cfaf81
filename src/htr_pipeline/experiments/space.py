"""What a sweep searches and fixes, checked against the parameters schema before any trial trains.

A trial's settings are the project's validated config with ``sweep.fixed``, the trial's searched values and its
seed (``training.gan_seed``) set on top, validated again as a whole: exactly what ``kedro run`` with those
``--params`` would run. :func:`check_sweep` validates every key and every value of the space (every combination
for the grid) in a second, so a typo or an impossible value never waits for an hour of training.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.config import (
    ConfigError,
    ProjectConfig,
    SearchDimension,
    SweepConfig,
    check_key_path,
    effective_parameters,
    validate_parameters,
    validates_on_pages,
    with_overrides,
)
from htr_pipeline.training.data_loading import width_multiple

SEED_KEY = "training.gan_seed"
"""The setting ``sweep.seeds`` repeats each configuration over: the GAN stage's seed, so stage 1 is shared."""

TRIAL_SECTIONS = ("training", "evaluation")
"""The sections a trial reads: it trains and evaluates on the data version the sweep started from."""

REFUSED_KEYS: tuple[tuple[str, str], ...] = (
    ("data", "a sweep trains every trial on one ingested data version; ingest with those settings and sweep again"),
    ("diagnostics", "a trial runs training and evaluation only"),
    ("inference", "a trial runs training and evaluation only"),
    ("comparison", "a trial runs training and evaluation only"),
    ("sweep", "the sweep's own settings are not a trial's"),
    (SEED_KEY, "sweep.seeds sets it: list the seeds there"),
    ("training.resume_from", "every trial trains from the start"),
    (
        "evaluation.split",
        "every trial is evaluated on the same lines, so the comparison is paired (see "
        "sweep.objective_split for the lines the objective reads)",
    ),
    ("evaluation.checkpoint", "a trial evaluates the checkpoint it trained"),
    ("evaluation.recognizer_only", "a trial evaluates the generator it trained"),
)
"""Keys a sweep may not set, and why (a key is refused with every key below it)."""

MAX_CHECKED_COMBINATIONS = 10_000
"""The grid is validated combination by combination up to this many; beyond it, key by key."""

MAX_RANGE_VALUES = 1_000

GAN_ONLY_TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "devices",
    "speed",
    "generator",
    "discriminator",
    "losses",
    "adaptive_balancing",
    "monitor",
    "combined_cer_weight",
    "early_stopping",
    "gradient_spike_factor",
    "recognizer_during_gan",
    "page_crops",
    "gan_seed",
    "optimizer.lr_generator",
    "optimizer.lr_discriminator",
    "optimizer.betas",
    "optimizer.cosine_schedule",
)
"""Settings of ``training`` that stage 1 (the in-loop recognizer, the judge, the baselines) never reads. Every
other setting, and any setting added later, counts as stage 1's. The generator and ``speed.compile`` matter to
stage 1 only through the padded-width multiple of its batches, which is kept in their place."""


def refusal(key: str) -> str | None:
    """Why a sweep may not set ``key``; None when it may."""
    for refused, reason in REFUSED_KEYS:
        if key == refused or key.startswith(f"{refused}."):
            return reason
    return None


def range_values(dimension: SearchDimension) -> list[Any]:
    """The values a range takes in steps (from ``low`` up to ``high``), or its two ends without a step."""
    if dimension.step is None:
        return [dimension.low, dimension.high]
    count = int(np.floor((dimension.high - dimension.low) / dimension.step + 1e-9)) + 1
    if count > MAX_RANGE_VALUES:
        raise ConfigError(f"a range of {count} values is more than a grid can hold ({MAX_RANGE_VALUES})")
    values = [dimension.low + index * dimension.step for index in range(count)]
    return [int(value) for value in values] if dimension.is_integer else [round(value, 12) for value in values]


def candidate_values(dimension: SearchDimension) -> list[Any]:
    """The values of a dimension a grid runs, or that validation tries (a range without a step: its ends)."""
    return list(dimension.choices) if dimension.choices is not None else range_values(dimension)


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every combination of the space's values, keys in the order the space lists them."""
    keys = list(sweep.space)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*map(candidate_values, sweep.space.values()))
    ]


def trial_config(base: Mapping[str, Any], sweep: SweepConfig, values: Mapping[str, Any], seed: int) -> ProjectConfig:
    """The validated config of the trial of ``values`` and ``seed``: ``base`` (the effective config) with the
    fixed settings, the searched values and the seed set."""
    return validate_parameters(with_overrides(base, {**sweep.fixed, **values, SEED_KEY: seed}))


def trial_parameters(config: ProjectConfig) -> dict[str, Any]:
    """The sections a trial's ``kedro run`` is given, complete (every key explicit), so it runs exactly them."""
    effective = effective_parameters(config)
    return {section: effective[section] for section in TRIAL_SECTIONS}


def value_at(values: Mapping[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node[part]
    return node


def baseline_values(base: Mapping[str, Any], sweep: SweepConfig) -> dict[str, Any]:
    """Each searched key's value in the configured defaults (the project's config with ``sweep.fixed``)."""
    defaults = effective_parameters(validate_parameters(with_overrides(base, sweep.fixed)))
    return {key: value_at(defaults, key) for key in sweep.space}


def configuration_key(values: Mapping[str, Any]) -> str:
    """One string per configuration, the same in every worker: its searched values as sorted JSON."""
    return json.dumps(dict(values), sort_keys=True, default=str)


def configuration_label(values: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """``baseline``, or the searched values that differ from it (``training.losses.weights.ctc=3.0``)."""
    changed = [
        f"{key}={value}"
        for key, value in values.items()
        if configuration_key({key: value}) != configuration_key({key: baseline.get(key)})
    ]
    return ", ".join(changed) if changed else "baseline"


def check_sweep(sweep: SweepConfig, base: Mapping[str, Any]) -> None:
    """Every key of ``sweep.space`` and ``sweep.fixed`` names a setting a trial may change, and every value (every
    grid combination) validates with the project's config; raise :class:`ConfigError` listing each problem."""
    if not sweep.space and (sweep.sampler != "grid" or len(sweep.seeds) < 2):
        raise ConfigError(
            "sweep.space is empty: list the settings to search, e.g.\n"
            "  sweep:\n    space:\n      training.losses.weights.ctc: {choices: [1.0, 3.0]}\n"
            "or, to train the configured settings with several seeds and choose one, leave it empty with "
            "sampler: grid and two seeds or more"
        )
    problems = _key_problems(sweep)
    if problems:
        raise ConfigError(_listed(problems))
    try:
        trial_config(base, sweep, {}, sweep.seeds[0])
    except ConfigError as error:
        raise ConfigError(_listed([f"sweep.fixed: {_reason(error)}"])) from None
    for key, dimension in sweep.space.items():
        for value in candidate_values(dimension):
            problem = _value_problem(base, sweep, {key: value})
            if problem:
                problems.append(f"sweep.space['{key}'] value {value!r}: {problem}")
    if not problems and sweep.sampler == "grid":
        points = grid_points(sweep)
        for point in points if len(points) <= MAX_CHECKED_COMBINATIONS else []:
            problem = _value_problem(base, sweep, point)
            if problem:
                problems.append(f"sweep.space combination {point}: {problem}")
    if not problems:
        problems += _objective_problems(base, sweep)
    if problems:
        raise ConfigError(_listed(problems))


def _key_problems(sweep: SweepConfig) -> list[str]:
    problems = []
    for setting, keys in (("sweep.space", sweep.space), ("sweep.fixed", sweep.fixed)):
        for key in keys:
            reason = refusal(key)
            if reason is not None:
                problems.append(f"{setting}['{key}']: a sweep cannot set it: {reason}.")
                continue
            try:
                check_key_path(key, f"{setting}['{key}']")
            except ConfigError as error:
                problems.append(_reason(error))
    problems += [
        f"sweep.fixed['{key}']: also in sweep.space; a key is searched or fixed"
        for key in sweep.fixed
        if key in sweep.space
    ]
    return problems


def _value_problem(base: Mapping[str, Any], sweep: SweepConfig, values: Mapping[str, Any]) -> str | None:
    try:
        trial_config(base, sweep, values, sweep.seeds[0])
    except ConfigError as error:
        return _reason(error)
    return None


def _objective_problems(base: Mapping[str, Any], sweep: SweepConfig) -> list[str]:
    configs = [trial_config(base, sweep, {}, sweep.seeds[0])]
    if sweep.objective == "page_f_measure":
        # data.* is the same for every trial (the sweep refuses to change it): the defaults' config tells.
        if validates_on_pages(configs[0]):
            return []
        return [
            "sweep.objective page_f_measure reads the valid split's real pages (val/page_f_measure), and "
            "data.real_paper.folders has no folder of kind page_pairs: add one, or objective judge_cer"
        ]
    if sweep.objective == "psnr":
        return []
    configs += [trial_config(base, sweep, point, sweep.seeds[0]) for point in _each_value(sweep)]
    if any(config.training.judge is None for config in configs):
        return [
            f"sweep.objective {sweep.objective} reads the judge's CER, and some trial would train none "
            "(training.judge: null): set training.judge, or objective: psnr"
        ]
    return []


def _each_value(sweep: SweepConfig) -> list[dict[str, Any]]:
    return [{key: value} for key, dimension in sweep.space.items() for value in candidate_values(dimension)]


def _reason(error: ConfigError) -> str:
    """A ConfigError's problems on one line (its heading dropped)."""
    lines = str(error).splitlines()
    return "; ".join(line.strip().removeprefix("- ") for line in lines[1:]) if len(lines) > 1 else str(error)


def _listed(problems: Sequence[str]) -> str:
    heading = f"Invalid sweep ({len(problems)} problem{'s' if len(problems) > 1 else ''}), nothing was trained:"
    return "\n".join([heading, *(f"  - {problem}" for problem in problems)])


# ------------------------------------------------------------------------------------------------- stage 1


def data_fingerprint(manifest: pd.DataFrame, charset: Charset) -> str:
    """What identifies an ingested data set across machines and versions: its manifest (ids, splits, texts, sizes,
    the degradation recipe of every line) and its charset. Equal fingerprints mean the same lines."""
    records = manifest.sort_values("sample_id", kind="stable").to_json(orient="records", date_format="iso")
    digest = hashlib.sha256(records.encode("utf-8"))
    digest.update(json.dumps(charset.to_dict(), sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def stage_one_settings(config: ProjectConfig) -> dict[str, Any]:
    """The training settings stage 1 reads: all but :data:`GAN_ONLY_TRAINING_KEYS`, plus the padded-width
    multiple of its batches (set by the generator and ``speed.compile``)."""
    training = effective_parameters(config)["training"]
    for key in GAN_ONLY_TRAINING_KEYS:
        *sections, last = key.split(".")
        node = training
        for section in sections:
            node = node[section]
        node.pop(last)
    return {**training, "padded_width_multiple": width_multiple(config.training)}


def stage_one_key(config: ProjectConfig, fingerprint: str) -> str:
    """Trials with equal keys train the same stage 1 (recognizer, judge, baselines), so it is trained once."""
    text = json.dumps({"training": stage_one_settings(config), "data": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
