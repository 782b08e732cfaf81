"""Adaptive loss balancing: the documented rule by hand, convergence, skips, clamping, resume."""

from __future__ import annotations

import itertools

import pytest

from htr_pipeline.config import AdaptiveBalancingConfig
from htr_pipeline.training.balancing import (
    MAX_WEIGHT,
    AdaptiveLossBalancer,
    FixedLossWeights,
    build_balancer,
)

PREVIOUS_SYSTEM_BALANCING = AdaptiveBalancingConfig(target_ctc_share=0.65, adaptation_rate=0.15)


def test_one_update_by_hand():
    balancer = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    update = balancer.update(mean_visual=6.0, mean_ctc=2.0)
    # s = 1 * 2 / (1 * 2 + 1 * 6) = 0.25
    assert update.observed_ctc_share == pytest.approx(0.25)
    # weight_ctc = (0.65 / 0.25) ** 0.15 = exp(0.15 * ln 2.6) = 1.154107
    # weight_visual = (0.35 / 0.75) ** 0.15 = exp(0.15 * ln 0.46667) = 0.891972
    assert update.weight_ctc == pytest.approx(1.154107, abs=1e-6)
    assert update.weight_visual == pytest.approx(0.891972, abs=1e-6)
    assert update.skipped_reason is None
    assert (balancer.weight_ctc, balancer.weight_visual) == (update.weight_ctc, update.weight_visual)


def test_share_converges_to_the_target_with_constant_losses():
    balancer = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    shares = [balancer.update(mean_visual=6.0, mean_ctc=2.0).observed_ctc_share for _ in range(80)]
    assert shares[0] == pytest.approx(0.25)
    assert all(later > earlier for earlier, later in itertools.pairwise(shares))
    assert shares[-1] == pytest.approx(0.65, abs=1e-4)


@pytest.mark.parametrize(
    ("mean_visual", "mean_ctc", "reason"),
    [(6.0, 0.0, "CTC term is 0.0"), (0.0, 2.0, "visual term is 0.0"), (6.0, float("nan"), "not finite")],
)
def test_undefined_share_leaves_the_weights_and_says_why(mean_visual: float, mean_ctc: float, reason: str):
    balancer = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    balancer.update(mean_visual=6.0, mean_ctc=2.0)
    before = (balancer.weight_ctc, balancer.weight_visual)
    update = balancer.update(mean_visual, mean_ctc)
    assert update.observed_ctc_share is None
    assert reason in update.skipped_reason
    assert (update.weight_ctc, update.weight_visual) == before == (balancer.weight_ctc, balancer.weight_visual)


def test_the_visual_share_is_the_rest_and_cannot_be_set():
    assert AdaptiveBalancingConfig(target_ctc_share=0.65).target_visual_share == 0.35
    with pytest.raises(ValueError, match="target_visual_share"):
        AdaptiveBalancingConfig(target_ctc_share=0.65, target_visual_share=0.35)


def test_weights_are_clamped():
    balancer = AdaptiveLossBalancer(AdaptiveBalancingConfig(target_ctc_share=0.99, adaptation_rate=1.0))
    for _ in range(10):
        balancer.update(mean_visual=1e6, mean_ctc=1e-6)
    assert balancer.weight_ctc == MAX_WEIGHT


def test_state_round_trip_continues_identically():
    uninterrupted = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    history = [(6.0, 2.0), (5.0, 2.5), (4.0, 1.0), (3.0, 3.0)]
    expected = [uninterrupted.update(visual, ctc) for visual, ctc in history]

    first_half = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    for visual, ctc in history[:2]:
        first_half.update(visual, ctc)
    resumed = AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING)
    resumed.load_state_dict(first_half.state_dict())
    assert [resumed.update(visual, ctc) for visual, ctc in history[2:]] == expected[2:]


def test_fixed_weights_share_the_interface_and_never_move():
    fixed = build_balancer(None)
    assert isinstance(fixed, FixedLossWeights)
    update = fixed.update(mean_visual=6.0, mean_ctc=2.0)
    assert update.observed_ctc_share == pytest.approx(0.25)
    assert (update.weight_ctc, update.weight_visual) == (fixed.weight_ctc, fixed.weight_visual) == (1.0, 1.0)
    assert "fixed" in update.skipped_reason
    assert isinstance(build_balancer(PREVIOUS_SYSTEM_BALANCING), AdaptiveLossBalancer)


def test_resuming_with_the_other_kind_of_balancing_is_an_error():
    with pytest.raises(ValueError, match="adaptive_balancing"):
        FixedLossWeights().load_state_dict(AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING).state_dict())
    with pytest.raises(ValueError, match="adaptive_balancing"):
        AdaptiveLossBalancer(PREVIOUS_SYSTEM_BALANCING).load_state_dict(FixedLossWeights().state_dict())
