"""Nodes of comparison: read the named runs from MLflow, compare them with the library, return the outputs (the
catalog logs them to this run, linked to the runs compared: ``comparison_*`` in ``conf/base/catalog.yml``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from PIL import Image

from htr_pipeline.config import ComparisonConfig
from htr_pipeline.evaluation.run import figure_image
from htr_pipeline.experiments.comparison import BootstrapSettings, choose_baseline, compare_runs
from htr_pipeline.experiments.runs import ComparisonSelectionError
from htr_pipeline.experiments.writers import comparison_outputs
from htr_pipeline.tracking import read_compared_run, sweep_trial_run_ids, tagged_run_ids

ComparisonResult = tuple[dict[str, Any], str, pd.DataFrame, str, Image.Image, Image.Image]


def compare_evaluated_runs(config: ComparisonConfig) -> ComparisonResult:
    """The runs ``comparison.runs``, ``comparison.tag`` or ``comparison.sweep`` names, against the baseline."""
    runs = [read_compared_run(run_id, config.tracking_uri) for run_id in _selected_run_ids(config)]
    baseline = choose_baseline(runs, config.baseline, sweep_defaults=config.sweep is not None)
    comparison = compare_runs(runs, baseline, bootstrap_settings(config), refuse_unpaired=config.sweep is None)
    return as_outputs(comparison)


def bootstrap_settings(config: ComparisonConfig) -> BootstrapSettings:
    return BootstrapSettings(config.bootstrap_resamples, config.bootstrap_seed, config.confidence_level)


def as_outputs(comparison: Any) -> ComparisonResult:
    outputs = comparison_outputs(comparison)
    return (
        outputs.summary,
        outputs.report,
        outputs.table,
        outputs.latex,
        figure_image(outputs.validation_curves),
        figure_image(outputs.cer_against_psnr),
    )


def _selected_run_ids(config: ComparisonConfig) -> list[str]:
    if config.runs:
        return list(config.runs)
    if config.tag:
        return tagged_run_ids(config.tag, config.tracking_uri)
    if config.sweep:
        return sweep_trial_run_ids(config.sweep, config.tracking_uri)
    raise ComparisonSelectionError(
        "comparison: name the runs to compare: `kedro run --pipelines=comparison --params "
        '"comparison.runs=<run id> <run id>"` (the first is the baseline unless comparison.baseline names one), '
        "comparison.tag=<key>=<value>, or comparison.sweep=<study name>"
    )
