"""What people read of a sweep and a comparison: the summary block's lines and warnings, the pictures, numbers too
small for their digits, and runs that repeat a configuration and seed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from htr_pipeline.evaluation.run import figure_image
from htr_pipeline.experiments.comparison import BootstrapSettings, compare_runs
from htr_pipeline.experiments.figures import Interval
from htr_pipeline.experiments.plots import plot_cer_against_psnr, plot_validation_curves
from htr_pipeline.experiments.writers import interval_text
from htr_pipeline.run_summary import RunResults, run_summary_lines, sweep_lines
from tests.experiments.conftest import evaluated_run

SWEEP_SUMMARY = {
    "study_name": "ctc_weight",
    "storage": "sqlite:////project/data/09_experiments/optuna.db",
    "sampler": "grid",
    "objective": "judge_cer",
    "objective_split": "valid",
    "seeds": [42, 43],
    "trials_run_here": [0, 1, 2],
    "stage_one_trainings": 1,
    "seconds": 540.0,
    "counts": {"COMPLETE": 3, "FAIL": 2},
    "best": ["trial 2 (training.losses.weights.ctc=10.0, seed 42): judge CER 0.3012, PSNR 27.10 dB"],
    "failed_configurations": [{"label": "training.losses.weights.ctc=10.0", "seed": 43, "failures": 2}],
}


def test_the_sweep_block_says_what_ran_how_long_and_what_never_finished():
    lines = sweep_lines(SWEEP_SUMMARY)
    assert lines[0] == (
        "Sweep 'ctc_weight' (grid, objective judge_cer on valid, seeds 42, 43): 3 complete, 2 failed (retried up "
        "to sweep.max_retries)"
    )
    assert "this worker ran 3 trials in 9.0 min and trained stage 1 1 time" in lines[1]
    assert lines[2].startswith("  best: trial 2")
    block = run_summary_lines(RunResults(sweep=SWEEP_SUMMARY))
    assert "WARNING: sweep: training.losses.weights.ctc=10.0 (seed 43) never finished: 2 failed trials" in block[-2]


def test_a_nonzero_difference_below_the_shown_digits_is_not_printed_as_zero():
    assert interval_text(Interval(3e-6, 1e-6, 5e-6), 4, signed=True) == "+3.0e-06 [+1.0e-06, +5.0e-06]"
    assert interval_text(Interval(0.0, -1e-6, 5e-6), 4, signed=True) == "+0.0000 [-0.0000, +0.0000]"
    assert interval_text(Interval(0.0123, 0.01, 0.015), 4) == "0.0123 [0.0100, 0.0150]"


def test_runs_repeating_a_configuration_and_seed_are_refused():
    first = evaluated_run("first", 4, configuration="{}", configuration_label="baseline", seed=1)
    again = evaluated_run("again", 4, configuration="{}", configuration_label="baseline", seed=1)
    with pytest.raises(ValueError, match="runs again repeat a configuration and seed"):
        compare_runs([first, again], "first")


def test_the_pictures_draw_every_run():
    runs = [evaluated_run("base", 4), evaluated_run("other", 8, psnr_shift=1.0)]
    comparison = compare_runs(runs, "base", BootstrapSettings(200, 0, 0.95))
    for figure in (plot_validation_curves(runs), plot_cer_against_psnr(comparison)):
        image = figure_image(figure)
        assert image.size[0] > 600 and image.size[1] > 300
        # not a blank canvas: the curves and points are drawn in colour
        colours = Image.open(io.BytesIO(_png(image))).convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 50
    legend = [text.get_text() for text in plot_cer_against_psnr(comparison).axes[0].get_legend().get_texts()]
    assert legend == ["base (baseline)", "other"]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
