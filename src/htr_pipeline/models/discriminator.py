"""Discriminators ``patch`` and ``dual_modal``: is this candidate the clean version of this degraded line?

Both are conditional PatchGANs (Isola et al., pix2pix): they see the degraded input stacked with a candidate
(the clean image or the generator's output) and give one raw logit per image patch; the adversarial loss decides
between LSGAN and BCE. ``dual_modal`` also reads a text (the recognizer's reading or the ground truth) and
modulates the image features with it.

Normalisation is InstanceNorm: real and fake batches are scored separately, so BatchNorm would give each its
own statistics (a shortcut the discriminator can exploit), and a patch's score must not depend on other samples.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from htr_pipeline.charset import BLANK_INDEX


def patch_trunk(in_channels: int, channels: list[int]) -> nn.Sequential:
    """Conv4x4 + InstanceNorm + LeakyReLU(0.2) blocks, one per entry of ``channels``.

    Every block halves height and width except the last, which keeps them (pix2pix's layout: with
    ``[64, 128, 256, 512]`` and the final conv, each logit sees a 70 x 70 px patch). The first block has no
    norm, so the raw contrast of the input reaches the discriminator.
    """
    if not channels:
        raise ValueError("a patch discriminator needs at least one conv block")
    blocks = []
    for index, out_channels in enumerate(channels):
        is_first, is_last = index == 0, index == len(channels) - 1
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=1 if is_last else 2, padding=1, bias=is_first)
        ]
        if not is_first:
            layers.append(nn.InstanceNorm2d(out_channels, affine=True))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        blocks.append(nn.Sequential(*layers))
        in_channels = out_channels
    return nn.Sequential(*blocks)


def _check_pair(degraded: Tensor, candidate: Tensor) -> None:
    if degraded.dim() != 4 or degraded.shape[1] != 1 or degraded.shape != candidate.shape:
        raise ValueError(
            f"expected degraded and candidate of the same shape (batch, 1, height, width), "
            f"got {tuple(degraded.shape)} and {tuple(candidate.shape)}"
        )


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN on ``cat([degraded, candidate])``; one raw logit per patch."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        self.trunk = patch_trunk(2, channels)
        self.to_logits = nn.Conv2d(channels[-1], 1, kernel_size=4, padding=1)

    def forward(self, degraded: Tensor, candidate: Tensor) -> Tensor:
        # degraded, candidate: (batch, 1, height, width), values in [0, 1]
        _check_pair(degraded, candidate)
        features = self.trunk(torch.cat([degraded, candidate], dim=1))
        return self.to_logits(features)  # (batch, 1, patches_high, patches_wide)


class TextEncoder(nn.Module):
    """A symbol sequence to one vector: embedding, a GRU, the mean of its outputs over the real symbols.

    The GRU runs forward only, so its outputs at the real symbols never see the padding after them: the vector of
    a text is the same however far its batch is padded. An empty text gives the zero vector.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, embedding_dim, padding_idx=BLANK_INDEX)
        self.recurrent = nn.GRU(embedding_dim, embedding_dim, batch_first=True)

    def forward(self, text_labels: Tensor, text_lengths: Tensor) -> Tensor:
        # text_labels: (batch, max_length) int64 label indices, BLANK_INDEX beyond each length
        # text_lengths: (batch,) int64
        batch, max_length = text_labels.shape
        if text_lengths.shape != (batch,):
            raise ValueError(f"text_lengths must be (batch,) = ({batch},), got {tuple(text_lengths.shape)}")
        # Checked on the device: reading the lengths back would make every training step wait for the GPU.
        torch._assert_async(
            ((text_lengths >= 0) & (text_lengths <= max_length)).all(),
            f"text_lengths must be in [0, {max_length}] (the labels' padded length)",
        )
        if max_length == 0:  # a batch of empty texts: one padding step keeps the GRU input non-empty
            text_labels = text_labels.new_full((batch, 1), BLANK_INDEX)
            max_length = 1
        # fp32 whatever the autocast around: autocast would run a cuDNN GRU in fp16, even under bf16.
        with torch.autocast(device_type=text_labels.device.type, enabled=False):
            outputs, _ = self.recurrent(self.embedding(text_labels).float())  # (batch, max_length, embedding_dim)
        positions = torch.arange(max_length, device=text_labels.device)
        is_symbol = (positions[None, :] < text_lengths[:, None]).unsqueeze(-1).to(outputs.dtype)
        return (outputs * is_symbol).sum(dim=1) / text_lengths.clamp(min=1)[:, None].to(outputs.dtype)


class DualModalDiscriminator(nn.Module):
    """The patch trunk, its last feature map scaled and shifted per channel by the text (FiLM), then the logits."""

    def __init__(self, channels: list[int], num_classes: int, text_embedding_dim: int) -> None:
        super().__init__()
        self.channels = list(channels)
        self.num_classes = num_classes
        self.text_embedding_dim = text_embedding_dim
        self.trunk = patch_trunk(2, channels)
        self.text_encoder = TextEncoder(num_classes, text_embedding_dim)
        self.film = nn.Linear(text_embedding_dim, 2 * channels[-1])
        self.to_logits = nn.Conv2d(channels[-1], 1, kernel_size=4, padding=1)

    def forward(self, degraded: Tensor, candidate: Tensor, text_labels: Tensor, text_lengths: Tensor) -> Tensor:
        # degraded, candidate: (batch, 1, height, width), values in [0, 1]
        # text_labels: (batch, max_length) int64, BLANK_INDEX beyond each length; text_lengths: (batch,) int64
        _check_pair(degraded, candidate)
        features = self.trunk(torch.cat([degraded, candidate], dim=1))  # (batch, channels[-1], h, w)
        text = self.text_encoder(text_labels, text_lengths)  # (batch, text_embedding_dim)
        scale, shift = self.film(text).chunk(2, dim=1)
        # 1 + scale: the text modulates the features around identity instead of having to learn to pass them.
        features = features * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
        return self.to_logits(features)  # (batch, 1, patches_high, patches_wide)
