"""Losses: hand-checked CTC, infeasible labels, the gradient-keeping ceiling, GAN and feature losses."""

from __future__ import annotations

import math

import pytest
import torch

from htr_pipeline.charset import BLANK_INDEX
from htr_pipeline.config import CtcSchedule
from htr_pipeline.training.losses import (
    apply_ctc_ceiling,
    ctc_infeasible,
    ctc_loss_per_sample,
    ctc_schedule_factor,
    discriminator_loss,
    generator_adversarial_loss,
    perceptual_loss,
    pixel_l1,
    recognition_feature_loss,
)


def ctc_batch(labels: list[list[int]], time_steps: int, classes: int = 3, logits: torch.Tensor | None = None):
    """Uniform logits (or the given ones) and padded targets for ``labels``."""
    if logits is None:
        logits = torch.zeros(len(labels), time_steps, classes)
    longest = max(len(label) for label in labels)
    targets = torch.tensor([label + [1] * (longest - len(label)) for label in labels], dtype=torch.int64)
    input_lengths = torch.full((len(labels),), time_steps, dtype=torch.int64)
    target_lengths = torch.tensor([len(label) for label in labels], dtype=torch.int64)
    return logits, targets, input_lengths, target_lengths


# ---------------------------------------------------------------------------------------------------- CTC


def test_ctc_of_uniform_probabilities_matches_the_hand_count():
    # T=2, blank + 2 symbols, each with probability 1/3 at each step.
    # Label [1]: alignments (1,1), (0,1), (1,0) -> P = 3/9 -> loss log 3, over 1 symbol.
    # Label [1, 2]: one alignment (1,2) -> P = 1/9 -> loss log 9, over 2 symbols = log 3.
    result = ctc_loss_per_sample(*ctc_batch([[1], [1, 2]], time_steps=2), blank=BLANK_INDEX)
    assert result.per_sample.dtype == torch.float32
    assert result.per_sample.tolist() == pytest.approx([math.log(3), math.log(3)])
    assert int(result.infinite_count) == 0


def test_infeasible_labels_give_zero_loss_and_zero_gradient_and_are_counted():
    # T=2: [1, 2, 1] is longer than T; [1, 1] needs a blank between the repeats, so 3 steps.
    logits = torch.zeros(3, 2, 3, requires_grad=True)
    result = ctc_loss_per_sample(*ctc_batch([[1, 2, 1], [1, 1], [2]], time_steps=2, logits=logits), blank=BLANK_INDEX)
    assert result.per_sample[:2].tolist() == [0.0, 0.0]
    assert result.per_sample[2].item() == pytest.approx(math.log(3))
    assert result.infinite_count.dtype == torch.int64
    assert int(result.infinite_count) == 2
    result.per_sample.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[:2].abs().sum() == 0
    assert logits.grad[2].abs().sum() > 0


def test_feasibility_counts_repeats_only_inside_the_label():
    targets = torch.tensor([[1, 1, 0, 0], [1, 2, 2, 2], [3, 3, 3, 3]])  # row 0 padded with zeros after length 2
    target_lengths = torch.tensor([2, 4, 2])
    needed_steps = [3, 6, 3]
    for steps_short, expected in ((0, [False, False, False]), (1, [True, True, True])):
        input_lengths = torch.tensor(needed_steps) - steps_short
        assert ctc_infeasible(targets, input_lengths, target_lengths).tolist() == expected


def test_a_confident_correct_reading_is_not_counted_as_infeasible():
    logits = torch.full((1, 3, 3), -1e4)
    logits[0, :, 1] = 1e4  # certain of symbol 1 at every step: the loss rounds to exactly 0
    result = ctc_loss_per_sample(*ctc_batch([[1]], time_steps=3, logits=logits), blank=BLANK_INDEX)
    assert result.per_sample.item() == 0.0
    assert int(result.infinite_count) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_give_the_fp32_loss(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 12, 6, generator=generator)
    batch = ctc_batch([[1, 2, 3], [4, 5], [5, 5, 1, 2], [3]], time_steps=12, logits=logits)
    reference = ctc_loss_per_sample(*batch, blank=BLANK_INDEX).per_sample
    low_precision = ctc_loss_per_sample(logits.to(dtype), *batch[1:], blank=BLANK_INDEX).per_sample
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = ctc_loss_per_sample(logits.to(dtype), *batch[1:], blank=BLANK_INDEX).per_sample
    assert low_precision.dtype == under_autocast.dtype == torch.float32
    # Only the rounding of the logits themselves differs: well under 1 % of the loss.
    torch.testing.assert_close(low_precision, reference, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(under_autocast, low_precision)


def test_ceiling_rescales_with_a_nonzero_gradient_and_counts_bites():
    per_sample = torch.tensor([10.0, 1.0, 4.0], requires_grad=True)
    rescaled, above = apply_ctc_ceiling(per_sample, ceiling=4.0)
    assert rescaled.tolist() == pytest.approx([4.0, 1.0, 4.0])
    assert above.dtype == torch.int64 and int(above) == 1
    rescaled.sum().backward()
    assert per_sample.grad.tolist() == pytest.approx([0.4, 1.0, 1.0])  # ceiling / loss above it, else 1


def test_ceiling_keeps_the_ctc_gradient_reaching_the_logits():
    logits = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    result = ctc_loss_per_sample(*ctc_batch([[1, 2, 3], [3, 2]], time_steps=6, classes=4, logits=logits), blank=0)
    capped, above = apply_ctc_ceiling(result.per_sample, ceiling=0.01)
    assert int(above) == 2
    capped.sum().backward()
    assert logits.grad.abs().sum() > 0


def test_no_ceiling_changes_nothing():
    per_sample = torch.tensor([500.0, 1.0])
    unchanged, above = apply_ctc_ceiling(per_sample, None)
    assert unchanged is per_sample and int(above) == 0


def test_ctc_schedule_warms_up_then_ramps():
    schedule = CtcSchedule(warmup_epochs=2, ramp_epochs=4)
    assert [ctc_schedule_factor(epoch, schedule) for epoch in range(1, 8)] == [0, 0, 0.25, 0.5, 0.75, 1, 1]
    assert ctc_schedule_factor(1, CtcSchedule()) == 1.0
    assert [ctc_schedule_factor(epoch, CtcSchedule(warmup_epochs=1)) for epoch in (1, 2)] == [0.0, 1.0]
    with pytest.raises(ValueError, match="from 1"):
        ctc_schedule_factor(0, schedule)


# ------------------------------------------------------------------------------------- image and GAN losses


def test_pixel_l1_ignores_masked_pixels():
    clean = torch.zeros(1, 1, 2, 4)
    restored = torch.tensor([[[[0.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]]]])
    valid = torch.tensor([[[[True, True, False, False]]]])  # right half is padding
    assert pixel_l1(restored, clean).item() == pytest.approx(0.75)
    assert pixel_l1(restored, clean, valid).item() == pytest.approx(0.5)


def test_adversarial_losses_by_hand():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert discriminator_loss(ones, zeros, "lsgan", 0.0).item() == pytest.approx(0.0)
    assert discriminator_loss(ones, zeros, "lsgan", 0.1).item() == pytest.approx(0.5 * 0.1**2)
    assert discriminator_loss(zeros, zeros, "bce", 0.0).item() == pytest.approx(math.log(2))
    assert generator_adversarial_loss(zeros, "lsgan").item() == pytest.approx(1.0)
    assert generator_adversarial_loss(zeros, "bce").item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="kind"):
        generator_adversarial_loss(zeros, "hinge")  # type: ignore[arg-type]


def test_recognition_feature_loss_averages_valid_time_steps_only():
    clean = torch.zeros(1, 3, 2)
    restored = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]], requires_grad=True)
    valid = torch.tensor([[True, True, False]])
    loss = recognition_feature_loss(restored, clean, valid)
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    loss.backward()
    assert restored.grad[0, 2].abs().sum() == 0


def test_perceptual_loss_is_the_mean_over_layers():
    restored = [torch.ones(1, 2, 4, 4), torch.full((1, 4, 2, 2), 3.0)]
    clean = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 2, 2)]
    assert perceptual_loss(restored, clean).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="number of layers"):
        perceptual_loss(restored, clean[:1])
