"""Every loss of the GAN and the recognizer, each a small function of tensors.

CTC (Graves et al. 2006, "Connectionist temporal classification: labelling unsegmented sequence data with
recurrent neural networks", ICML) is the loss the previous system got wrong: it was summed over time (~629 per
sample), then clipped at 300 by a clip with zero gradient above the bound, so it added a constant and never taught
the generator. Here CTC is computed in fp32 from log-softmax, divided by the target length (as
``torch.nn.functional.ctc_loss(reduction="mean")`` does before it averages), and a ceiling, when one is configured,
rescales a large value instead of clipping it, so its gradient keeps its direction.

The frozen VGG perceptual feature extractor is a model, in :mod:`htr_pipeline.models.vgg`; the perceptual loss
here compares whatever features it is handed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from htr_pipeline.config import CtcSchedule
from htr_pipeline.devices import to_device_async

AdversarialKind = Literal["lsgan", "bce"]

# ---------------------------------------------------------------------------------------------------- CTC


@dataclass
class CtcLossResult:
    per_sample: Tensor
    """(batch,) fp32: CTC negative log-likelihood / target length; 0 where the alignment is impossible."""
    infinite_count: Tensor
    """() int64: samples whose label cannot be aligned to their time steps (infinite CTC, zeroed)."""


def ctc_loss_per_sample(
    logits: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor, blank: int
) -> CtcLossResult:
    """CTC per sample, normalised by target length, in fp32 whatever the dtype of ``logits``.

    An impossible alignment has an infinite CTC; ``zero_infinity`` turns its loss and gradient into 0, and the
    sample is counted from the lengths alone: a label of L symbols with R adjacent repeats needs L + R time
    steps (a blank must separate each repeat), so it is infeasible exactly when input_length < L + R. This costs
    no second CTC pass. (A zero loss is no test: a confident, correct reading can round to exactly 0 in fp32.)

    The lengths must be on the CPU: ATen's CTC reads them on the host, so lengths on a GPU would be copied back,
    and that copy waits for everything the GPU has queued. With ``torch.use_deterministic_algorithms`` on (the
    ``training.speed.deterministic`` setting) a CUDA CTC is computed on the CPU: its CUDA backward adds
    atomically, in no fixed order.
    """
    # logits: (batch, time, classes), any dtype; targets: (batch, max_target_length) int64, padded, on the
    # logits' device; input_lengths, target_lengths: (batch,) integer, on the CPU
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.device.type != "cpu":
            raise ValueError(
                f"{name} are on {lengths.device}; pass the CPU copies (LineBatch.host_widths, .host_label_lengths): "
                "reading lengths back from a GPU makes every step wait for it"
            )
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = logits.float().log_softmax(dim=-1)
        if log_probs.is_cuda and torch.are_deterministic_algorithms_enabled():
            ctc_targets, ctc_log_probs = targets.cpu(), log_probs.cpu()
        else:
            ctc_targets, ctc_log_probs = targets, log_probs
        negative_log_likelihood = F.ctc_loss(
            ctc_log_probs.transpose(0, 1),
            ctc_targets,
            input_lengths,
            target_lengths,
            blank=blank,
            reduction="none",
            zero_infinity=True,
        ).to(log_probs.device)
    label_lengths = to_device_async(target_lengths, log_probs.device).to(torch.float32)
    per_sample = negative_log_likelihood / label_lengths.clamp(min=1.0)
    infeasible = ctc_infeasible(targets, input_lengths, target_lengths)
    return CtcLossResult(per_sample=per_sample, infinite_count=infeasible.sum().to(per_sample.device))


def ctc_infeasible(targets: Tensor, input_lengths: Tensor, target_lengths: Tensor) -> Tensor:
    """(batch,) bool: the label needs more time steps (its length plus its adjacent repeats) than it has."""
    # targets: (batch, max_target_length), padded; input_lengths, target_lengths: (batch,), on any device
    device = targets.device
    input_lengths, target_lengths = to_device_async(input_lengths, device), to_device_async(target_lengths, device)
    pair_positions = torch.arange(max(targets.shape[1] - 1, 0), device=device)
    pairs_inside_label = pair_positions.unsqueeze(0) < (target_lengths - 1).unsqueeze(1)
    repeats = ((targets[:, 1:] == targets[:, :-1]) & pairs_inside_label).sum(dim=1)
    return input_lengths < target_lengths + repeats


def apply_ctc_ceiling(per_sample: Tensor, ceiling: float | None) -> tuple[Tensor, Tensor]:
    """Rescale per-sample CTC values above ``ceiling`` down to it; return them and how many were rescaled.

    A value above the ceiling becomes ``loss * (ceiling / loss.detach())``: it equals the ceiling, and its
    gradient is the original one scaled by ceiling / loss, never zero. The previous system clamped CTC at 300, which
    has zero gradient above the bound, so every sample over 300 taught the generator nothing.
    """
    # per_sample: (batch,) fp32
    if ceiling is None:
        return per_sample, torch.zeros((), dtype=torch.int64, device=per_sample.device)
    # Values at or below the ceiling get a factor of exactly 1; no division by a zero loss can happen.
    scale = ceiling / per_sample.detach().clamp(min=ceiling)
    above_ceiling = per_sample.detach() > ceiling
    return per_sample * scale, above_ceiling.sum()


def ctc_schedule_factor(epoch: int, schedule: CtcSchedule) -> float:
    """Multiplier of the CTC weight in ``epoch`` (counted from 1): 0 during warm-up, a linear ramp, then 1.

    With warmup_epochs=2 and ramp_epochs=4 the factors of epochs 1..7 are 0, 0, 0.25, 0.5, 0.75, 1, 1.
    """
    if epoch < 1:
        raise ValueError(f"epochs are counted from 1, got {epoch}")
    epochs_after_warmup = epoch - schedule.warmup_epochs
    if epochs_after_warmup <= 0:
        return 0.0
    if schedule.ramp_epochs == 0:
        return 1.0
    return min(1.0, epochs_after_warmup / schedule.ramp_epochs)


# ------------------------------------------------------------------------------------------- image losses


def pixel_l1(restored: Tensor, clean: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute difference over the valid pixels (all of them without a mask)."""
    # restored, clean: (batch, 1, height, width) in [0, 1]; mask: broadcastable to them, true/1 on valid pixels
    absolute_error = (restored.float() - clean.float()).abs()
    if mask is None:
        return absolute_error.mean()
    weights = mask.to(absolute_error.dtype).expand_as(absolute_error)
    return (absolute_error * weights).sum() / weights.sum().clamp(min=1.0)


def generator_adversarial_loss(fake_logits: Tensor, kind: AdversarialKind) -> Tensor:
    """The generator wants the discriminator to call its output real (target 1, never smoothed)."""
    # fake_logits: discriminator outputs on restored images, any shape (e.g. PatchGAN (batch, 1, h, w))
    return _adversarial_term(fake_logits, 1.0, kind)


def discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, kind: AdversarialKind, label_smoothing: float
) -> Tensor:
    """Average of the real term (target 1 - label_smoothing) and the fake term (target 0)."""
    # real_logits, fake_logits: discriminator outputs on clean and restored images, any shape
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    real_term = _adversarial_term(real_logits, 1.0 - label_smoothing, kind)
    fake_term = _adversarial_term(fake_logits, 0.0, kind)
    return 0.5 * (real_term + fake_term)


def _adversarial_term(logits: Tensor, target: float, kind: AdversarialKind) -> Tensor:
    logits = logits.float()
    targets = torch.full_like(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, targets)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    raise ValueError(f"unknown adversarial loss kind {kind!r}; expected 'lsgan' or 'bce'")


# --------------------------------------------------------------------------------------- feature losses


def recognition_feature_loss(features_restored: Tensor, features_clean: Tensor, time_mask: Tensor) -> Tensor:
    """Mean squared distance between recognizer features of restored and clean lines, over valid time steps.

    The clean features are the target, so no gradient flows into them (nor into a fine-tuned recognizer).
    """
    # features_restored, features_clean: (batch, time, channels); time_mask: (batch, time) bool, true = valid step
    if features_restored.shape != features_clean.shape:
        raise ValueError(f"feature shapes differ: {tuple(features_restored.shape)} vs {tuple(features_clean.shape)}")
    squared_distance = (features_restored.float() - features_clean.detach().float()).pow(2).mean(dim=-1)
    valid = time_mask.to(squared_distance.dtype)
    return (squared_distance * valid).sum() / valid.sum().clamp(min=1.0)


def perceptual_loss(features_restored: Sequence[Tensor], features_clean: Sequence[Tensor]) -> Tensor:
    """Mean over layers of the mean absolute difference of their features; clean features are the target."""
    # features_*: one (batch, channels, height, width) tensor per layer, in the same order
    if len(features_restored) != len(features_clean) or not features_restored:
        raise ValueError(
            f"need the same non-zero number of layers, got {len(features_restored)} and {len(features_clean)}"
        )
    layer_distances = [
        F.l1_loss(restored.float(), clean.detach().float())
        for restored, clean in zip(features_restored, features_clean, strict=True)
    ]
    return torch.stack(layer_distances).mean()
