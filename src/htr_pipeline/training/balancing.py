"""Loss balancing: multipliers that steer how much of the generator loss comes from CTC.

The generator loss actually optimised is ``weight_visual * visual + weight_ctc * ctc_term``, where ``visual`` is
the sum of the configured-weighted pixel, adversarial, recognition-feature and perceptual terms and ``ctc_term``
is the configured-weighted CTC (schedule factor included). The multipliers start at 1.0 and, with adaptive
balancing, change once per epoch; with fixed weights they stay 1.0. Both balancers share one interface, so the
training loop needs no branch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from htr_pipeline.config import AdaptiveBalancingConfig

MIN_WEIGHT = 1e-3
MAX_WEIGHT = 1e3


@dataclass(frozen=True)
class BalancerUpdate:
    """What one epoch-end update saw and did."""

    observed_ctc_share: float | None
    """weight_ctc * C / (weight_ctc * C + weight_visual * V) with the multipliers in force during the epoch;
    None when it is undefined (a term is 0 or not finite)."""
    weight_ctc: float
    weight_visual: float
    skipped_reason: str | None = None
    """Why the weights were left unchanged; None when the update was applied (always set for fixed weights)."""


class AdaptiveLossBalancer:
    """Moves the CTC share of the generator loss towards ``target_ctc_share``, a fraction of the way per epoch.

    At each epoch end, from that epoch's mean weighted terms V (visual) and C (CTC):

        s = weight_ctc * C / (weight_ctc * C + weight_visual * V)
        weight_ctc    *= (target_ctc_share / s) ** adaptation_rate
        weight_visual *= ((1 - target_ctc_share) / (1 - s)) ** adaptation_rate

    then both are clamped to [MIN_WEIGHT, MAX_WEIGHT]. If C or V is not a positive finite number (CTC is 0
    during warm-up) the share is undefined and the weights stay as they are. With constant V and C, the log of
    the CTC-to-visual ratio moves a fraction ``adaptation_rate`` of the way to
    log(target_ctc_share / (1 - target_ctc_share)) each epoch, so the share converges geometrically to the target.
    """

    def __init__(self, config: AdaptiveBalancingConfig):
        self.config = config
        self.weight_ctc = 1.0
        self.weight_visual = 1.0

    def update(self, mean_visual: float, mean_ctc: float) -> BalancerUpdate:
        skipped_reason = _undefined_share_reason(mean_visual, mean_ctc)
        if skipped_reason is not None:
            return BalancerUpdate(None, self.weight_ctc, self.weight_visual, skipped_reason)
        balanced_ctc = self.weight_ctc * mean_ctc
        ctc_share = balanced_ctc / (balanced_ctc + self.weight_visual * mean_visual)
        rate = self.config.adaptation_rate
        self.weight_ctc = _clamp(self.weight_ctc * (self.config.target_ctc_share / ctc_share) ** rate)
        self.weight_visual = _clamp(self.weight_visual * (self.config.target_visual_share / (1.0 - ctc_share)) ** rate)
        return BalancerUpdate(ctc_share, self.weight_ctc, self.weight_visual)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "adaptive", "weight_ctc": self.weight_ctc, "weight_visual": self.weight_visual}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "adaptive")
        self.weight_ctc = float(state["weight_ctc"])
        self.weight_visual = float(state["weight_visual"])


class FixedLossWeights:
    """The configured loss weights as they are: both multipliers stay 1.0; the share is still reported."""

    weight_ctc = 1.0
    weight_visual = 1.0

    def update(self, mean_visual: float, mean_ctc: float) -> BalancerUpdate:
        reason = _undefined_share_reason(mean_visual, mean_ctc)
        ctc_share = None if reason is not None else mean_ctc / (mean_ctc + mean_visual)
        return BalancerUpdate(ctc_share, 1.0, 1.0, reason or "fixed loss weights (adaptive_balancing is null)")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "fixed"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "fixed")


def build_balancer(config: AdaptiveBalancingConfig | None) -> AdaptiveLossBalancer | FixedLossWeights:
    """The balancer ``training.adaptive_balancing`` asks for: adaptive with a config, fixed with null."""
    return FixedLossWeights() if config is None else AdaptiveLossBalancer(config)


def _undefined_share_reason(mean_visual: float, mean_ctc: float) -> str | None:
    for name, value in (("CTC", mean_ctc), ("visual", mean_visual)):
        if not math.isfinite(value):
            return f"mean {name} term is not finite ({value})"
        if value <= 0.0:
            return f"mean {name} term is {value} (e.g. CTC during warm-up); the share is undefined"
    return None


def _clamp(weight: float) -> float:
    return min(max(weight, MIN_WEIGHT), MAX_WEIGHT)


def _check_kind(state: dict[str, Any], expected: str) -> None:
    if state.get("kind") != expected:
        raise ValueError(
            f"checkpoint holds {state.get('kind')!r} loss balancing but the config asks for {expected!r}; "
            "set training.adaptive_balancing as in the run being resumed"
        )
