"""Gradient spike audit of epoch records made by the real GradientStatistics, round-tripped through JSON as the
MLflow artifacts ``gradients/epoch_NNN.json`` are."""

import dataclasses
import io
import json
import math

import numpy as np
import pytest
import torch

from htr_pipeline.diagnostics.gradient_spikes import gradient_spike_report, plot_gradient_spikes
from htr_pipeline.training.grad_stats import GradientStatistics

EPOCHS = 3
STEPS_PER_EPOCH = 40
SPIKE_FACTOR = 10.0
LAYERS = ("encoder.0", "decoder.3", "head")
PREVIOUS_SYSTEM_MEAN_NORM = 28.0
PREVIOUS_SYSTEM_MAX_NORM = 7494.0  # the previous system's largest norm: ~267x its mean

Override = dict[tuple[int, int], dict[str, float]]
"""{(epoch, step_in_epoch): {layer: norm}}: layer norms that replace the steady ones at that step."""


def _steady_layer_norms(rng: np.random.Generator) -> dict[str, float]:
    """Layer norms whose global norm is ~28, varying by a few percent from step to step."""
    per_layer = PREVIOUS_SYSTEM_MEAN_NORM / math.sqrt(len(LAYERS))
    return {layer: per_layer * float(rng.uniform(0.9, 1.1)) for layer in LAYERS}


def _epoch_reports(generator_overrides: Override | None = None) -> list[dict]:
    """What training logs: one record per epoch with both models' summaries, parsed back from JSON."""
    generator_overrides = generator_overrides or {}
    rng = np.random.default_rng(0)
    generator, discriminator = GradientStatistics(SPIKE_FACTOR), GradientStatistics(SPIKE_FACTOR)
    reports = []
    for epoch in range(1, EPOCHS + 1):
        generator.reset_epoch()
        discriminator.reset_epoch()
        for step in range(STEPS_PER_EPOCH):
            norms = {**_steady_layer_norms(rng), **generator_overrides.get((epoch, step), {})}
            generator.record({layer: torch.tensor(norm) for layer, norm in norms.items()})
            discriminator.record({layer: torch.tensor(norm) for layer, norm in _steady_layer_norms(rng).items()})
        report = {
            "epoch": epoch,
            "generator": dataclasses.asdict(generator.summarise()),
            "discriminator": dataclasses.asdict(discriminator.summarise()),
        }
        reports.append(json.loads(json.dumps(report)))
    return reports


def _spike_in_decoder_at_epoch_2() -> list[dict]:
    return _epoch_reports({(2, 5): {"decoder.3": PREVIOUS_SYSTEM_MAX_NORM}})


def test_steady_norms_are_ok_and_say_how_many_steps_were_checked():
    report = gradient_spike_report(_epoch_reports(), problem_factor=100.0, precision="fp32")
    assert report.audit == "gradient_spikes"
    assert report.verdict == "ok"
    assert [finding.verdict for finding in report.findings] == ["ok", "ok"]
    assert f"no gradient spikes in {EPOCHS * STEPS_PER_EPOCH} steps" in report.findings[0].message
    assert report.details["spikes"] == []
    assert len(report.details["per_epoch"]) == 2 * EPOCHS


def test_a_spike_the_size_of_the_previous_systems_is_a_problem_naming_layer_epoch_and_ratio():
    report = gradient_spike_report(_spike_in_decoder_at_epoch_2(), problem_factor=100.0, precision="fp32")
    assert report.verdict == "problem"
    generator_finding = report.findings[0]
    assert generator_finding.verdict == "problem"
    assert "decoder.3" in generator_finding.message
    assert "epoch 2 (step 5 of the epoch, global step 45)" in generator_finding.message
    (spike,) = report.details["spikes"]
    assert spike["model"] == "generator"
    assert (spike["epoch"], spike["step_in_epoch"], spike["global_step"], spike["layer"]) == (2, 5, 45, "decoder.3")
    assert spike["ratio"] == pytest.approx(
        PREVIOUS_SYSTEM_MAX_NORM / PREVIOUS_SYSTEM_MEAN_NORM, rel=0.05
    )  # ~267, as in the previous system's run
    assert f"{spike['ratio']:.3g}x" in generator_finding.message
    (layer,) = report.details["per_layer"]
    assert (layer["layer"], layer["spikes"], layer["epochs"]) == ("decoder.3", 1, [2])
    assert report.findings[1].verdict == "ok"  # the discriminator was steady


def test_a_spike_below_the_problem_factor_is_a_warning():
    report = gradient_spike_report(_spike_in_decoder_at_epoch_2(), problem_factor=500.0, precision="fp32")
    assert report.verdict == "warning"
    assert "decoder.3" in report.findings[0].message
    assert "below the 500x problem factor" in report.findings[0].message


def test_the_problem_factor_is_the_boundary_between_warning_and_problem():
    reports = _spike_in_decoder_at_epoch_2()
    ratio = gradient_spike_report(reports, 100.0, "fp32").details["spikes"][0]["ratio"]
    assert gradient_spike_report(reports, problem_factor=ratio, precision="fp32").verdict == "problem"
    assert gradient_spike_report(reports, problem_factor=ratio * 1.01, precision="fp32").verdict == "warning"


def test_epoch_reports_in_any_order_give_the_same_report():
    reports = _spike_in_decoder_at_epoch_2()
    in_order = gradient_spike_report(reports, 100.0, "fp32")
    reversed_order = gradient_spike_report(reports[::-1], 100.0, "fp32")
    assert reversed_order.to_dict() == in_order.to_dict()
    assert [row["epoch"] for row in in_order.details["per_epoch"]] == [1, 2, 3, 1, 2, 3]


def test_a_nan_step_in_fp32_is_a_problem():
    reports = _epoch_reports({(3, 7): {"head": math.nan}})
    report = gradient_spike_report(reports, problem_factor=100.0, precision="fp32")
    assert report.verdict == "problem"
    (non_finite,) = [finding for finding in report.findings if "non-finite" in finding.message]
    assert non_finite.verdict == "problem"
    assert "epoch 3 (step 7 of the epoch" in non_finite.message
    assert "layer head" in non_finite.message
    assert report.details["non_finite_steps"][0]["global_norm"] == "nan"
    json.dumps(report.to_dict(), allow_nan=False)  # nan is written as text, which kedro-viz can read


def test_the_same_nan_step_in_fp16_is_a_routine_overflow():
    reports = _epoch_reports({(3, 7): {"head": math.nan}})
    report = gradient_spike_report(reports, problem_factor=100.0, precision="fp16")
    assert report.verdict == "ok"
    assert any("routine overflows" in finding.message for finding in report.findings)


def test_many_overflows_in_fp16_are_a_warning():
    overflows = {(1, step): {"head": math.inf} for step in range(0, STEPS_PER_EPOCH, 4)}  # 10 of 120 steps
    report = gradient_spike_report(_epoch_reports(overflows), problem_factor=100.0, precision="fp16")
    assert report.verdict == "warning"
    assert "loss scale keeps collapsing" in report.findings[1].message


def test_no_epoch_reports_is_a_warning():
    report = gradient_spike_report([], problem_factor=100.0, precision="fp32")
    assert report.verdict == "warning"
    assert "logged no gradient statistics" in report.findings[0].message


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="precision"):
        gradient_spike_report(_epoch_reports(), problem_factor=100.0, precision="fp8")
    with pytest.raises(ValueError, match="problem_factor"):
        gradient_spike_report(_epoch_reports(), problem_factor=0.0, precision="fp32")


def test_markdown_lists_the_spiking_layer():
    markdown = gradient_spike_report(_spike_in_decoder_at_epoch_2(), 100.0, "fp32").to_markdown()
    assert "**Verdict: problem**" in markdown
    assert "| generator | decoder.3 | 1 | [2] |" in markdown


def test_plot_has_one_log_axes_per_model_with_the_spike_marked():
    figure = plot_gradient_spikes(_spike_in_decoder_at_epoch_2())
    generator_axes, discriminator_axes = figure.axes
    assert generator_axes.get_yscale() == discriminator_axes.get_yscale() == "log"
    assert "spike" in [text.get_text() for text in generator_axes.get_legend().get_texts()]
    assert "spike" not in [text.get_text() for text in discriminator_axes.get_legend().get_texts()]
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_plot_without_reports_says_so():
    figure = plot_gradient_spikes([])
    assert figure.axes == []
    assert "no gradient statistics" in figure.texts[0].get_text()


def test_clipping_on_most_steps_is_a_warning_naming_the_effective_update():
    # The default run: the generator's norm ~28 against a clip of 1.0, so the clip acts on every step.
    report = gradient_spike_report(_epoch_reports(), problem_factor=100.0, precision="fp32", clip_norm=1.0)
    assert report.verdict == "warning"
    generator = report.details["clipping"][0]
    assert generator["model"] == "generator"
    assert generator["clipped_steps"] == EPOCHS * STEPS_PER_EPOCH and generator["clipped_share"] == 1.0
    assert generator["mean_norm_over_clip"] == pytest.approx(PREVIOUS_SYSTEM_MEAN_NORM, rel=0.05)
    (finding,) = [f for f in report.findings if f.message.startswith("generator: clipping")]
    assert finding.verdict == "warning"
    assert "clipping acted on 120 of 120 steps (100%)" in finding.message
    assert "the effective update is the gradient rescaled to norm 1" in finding.message
    assert "## Gradient clipping" in report.to_markdown()


def test_a_clip_above_the_usual_norm_is_ok_and_still_reports_its_share():
    report = gradient_spike_report(_epoch_reports(), problem_factor=100.0, precision="fp32", clip_norm=29.0)
    assert report.verdict == "ok"
    share = report.details["clipping"][0]["clipped_share"]
    assert 0.0 < share < 0.5  # the steady norms vary by a few percent around 28
    assert report.details["clipping"][0]["mean_norm_over_clip"] == pytest.approx(28 / 29, rel=0.05)


def test_a_run_without_per_step_norms_judges_clipping_by_the_mean_norm():
    reports = _epoch_reports()
    for report in reports:
        for model in ("generator", "discriminator"):
            del report[model]["global_norms"]
    audit = gradient_spike_report(reports, problem_factor=100.0, precision="fp32", clip_norm=1.0)
    assert audit.details["clipping"][0]["clipped_steps"] is None
    assert audit.verdict == "warning"
    assert "cannot be counted" in audit.findings[1].message


def test_plot_is_per_step_with_the_clip_and_the_spike_threshold_drawn():
    figure = plot_gradient_spikes(_spike_in_decoder_at_epoch_2(), clip_norm=1.0, spike_factor=SPIKE_FACTOR)
    generator_axes, _ = figure.axes
    labels = [text.get_text() for text in generator_axes.get_legend().get_texts()]
    assert set(labels) == {"global norm, each step", "spike: 10x median", "clip (1)", "spike"}
    lines = {line.get_label(): line for line in generator_axes.get_lines()}
    steps, threshold = lines["global norm, each step"], lines["spike: 10x median"]
    assert len(steps.get_xdata()) == EPOCHS * STEPS_PER_EPOCH
    assert threshold.get_ydata()[10] == pytest.approx(SPIKE_FACTOR * np.median(steps.get_ydata()[:10]), rel=1e-3)
    assert generator_axes.get_xlabel() == "step (all epochs)"
