"""Generators ``unet`` and ``unet_residual``: a degraded line image in, a restored one out.

Both take and give ``(batch, 1, height, width)`` in [0, 1] (white paper = 1) for any height and width: the input
is padded (replicating its border) to a multiple of the total downsampling and the output cropped back.

Normalisation (``normalisation``, affine, the same at every level) is one of :data:`NORMALISATIONS`:

- ``instance``: each image by its own statistics, the same in training and evaluation and never mixing the
  samples of a batch (the previous system trained with batch 2, where BatchNorm's statistics are noise). But an
  image with no ink has only its paper's grain to normalise by, which comes out as strong as ink does elsewhere: on
  a window of blank textured paper (DIBCO 2011-PR7) the generator draws strokes where the paper has creases, and
  draws none on the same paper once a line of text is in the window (README: Blank paper).
- ``batch``: the statistics of the training batch, and in evaluation those learnt over training (running
  averages), so a pixel is restored from its own neighbourhood alone, whatever else is in the window or the batch.
- ``batch_instance`` (:class:`BatchInstanceNorm2d`): both, mixed per channel by a gate the training learns.
Before anything else, each input's paper is brought to one brightness (:mod:`htr_pipeline.models.paper_levels`)
unless ``paper_levels`` is None.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htr_pipeline.models.paper_levels import PaperLevels, level_paper


class BatchInstanceNorm2d(nn.Module):
    """Batch-Instance Normalization (Nam and Kim, NeurIPS 2018): per channel a learnt gate in [0, 1] mixes the
    batch-normalised features (running statistics when evaluating) and the instance-normalised ones, then one
    affine. A gate of 0 is InstanceNorm, 1 BatchNorm; each starts at 0.5. torch has no such layer, hence this one;
    the gate is clamped in the forward pass (no host copy). Under autocast the two norms run as autocast runs them,
    and the mix is float32 (gate and affine are float32 parameters), which the next convolution casts down."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.batch = nn.BatchNorm2d(channels, affine=False)
        self.gate = nn.Parameter(torch.full((channels,), 0.5))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, features: Tensor) -> Tensor:
        # features: (batch, channels, h, w)
        gate = self.gate.clamp(0.0, 1.0).view(1, -1, 1, 1)
        mixed = gate * self.batch(features) + (1.0 - gate) * F.instance_norm(features)
        return mixed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


NORMALISATIONS: dict[str, Callable[[int], nn.Module]] = {
    "instance": partial(nn.InstanceNorm2d, affine=True),
    "batch": nn.BatchNorm2d,
    "batch_instance": BatchInstanceNorm2d,
}
"""The generator's normalisation layer for a number of channels, by ``normalisation`` (module docstring)."""


def normalisation_layer(name: str, channels: int) -> nn.Module:
    if name not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {name!r}; one of {sorted(NORMALISATIONS)}")
    return NORMALISATIONS[name](channels)


class ConvNormAct(nn.Sequential):
    """conv3x3 + norm + ReLU; the conv has no bias because the norm removes it."""

    def __init__(self, in_channels: int, out_channels: int, normalisation: str) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            normalisation_layer(normalisation, out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """One U-Net level: two conv3x3 + norm + activation."""

    def __init__(self, in_channels: int, out_channels: int, normalisation: str) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, normalisation),
            ConvNormAct(out_channels, out_channels, normalisation),
        )


class UpLevel(nn.Module):
    """Decoder level: upsample x2 with a transposed conv, concatenate the encoder skip, two convs."""

    def __init__(self, in_channels: int, out_channels: int, normalisation: str) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.fuse = DoubleConv(2 * out_channels, out_channels, normalisation)

    def forward(self, features: Tensor, skip: Tensor) -> Tensor:
        # features: (batch, in_channels, h, w); skip: (batch, out_channels, 2h, 2w)
        upsampled = self.upsample(features)
        return self.fuse(torch.cat([upsampled, skip], dim=1))


INPUT_LOGIT_EPS = 1e-3
"""Inputs are clamped to [eps, 1 - eps] before the logit, so pure white or black stay finite."""


class UnetBase(nn.Module):
    """The U-Net data flow shared by both variants, which declare ``encoder``, ``downsample``, ``decoder``,
    ``to_image`` and ``size_multiple``: encoder levels (downsampling between them), decoder levels each fed the
    encoder output of its resolution, and a 1x1 conv giving a correction to the input's logit.

    The output is ``sigmoid(logit(levelled) + correction)``, still in [0, 1], where ``levelled`` is the input with
    its paper levels brought up (``paper_levels``). The 1x1 conv starts at zero, so an untrained generator returns
    its (levelled) input and training only has to learn what to change: the degraded line is
    already most of the clean one, and starting from grey costs many epochs on a CPU.
    """

    encoder: nn.ModuleList
    downsample: nn.Module
    decoder: nn.ModuleList
    to_image: nn.Conv2d
    size_multiple: int
    paper_levels: PaperLevels | None

    def forward(self, degraded: Tensor) -> Tensor:
        # degraded: (batch, 1, height, width), values in [0, 1]
        if degraded.dim() != 4 or degraded.shape[1] != 1:
            raise ValueError(f"expected images of shape (batch, 1, height, width), got {tuple(degraded.shape)}")
        degraded = level_paper(degraded, self.paper_levels)
        height, width = degraded.shape[-2:]
        features = pad_to_multiple(degraded, self.size_multiple)
        skips = []
        for level, encode in enumerate(self.encoder):
            if level > 0:
                features = self.downsample(features)
            features = encode(features)
            skips.append(features)
        skips.pop()  # the bottleneck feeds the decoder directly
        for decode, skip in zip(self.decoder, reversed(skips), strict=True):
            features = decode(features, skip)
        correction = self.to_image(features)[..., :height, :width]
        return torch.sigmoid(torch.logit(degraded, eps=INPUT_LOGIT_EPS) + correction)

    def _start_as_identity(self) -> None:
        nn.init.zeros_(self.to_image.weight)
        nn.init.zeros_(self.to_image.bias)


class UnetGenerator(UnetBase):
    """The classic U-Net (Ronneberger et al.) on one grey channel with a sigmoid output.

    ``channels`` are the encoder levels, finest first; each further level halves height and width.
    ``[64, 128, 256, 512, 1024]`` is the original size, about 31M parameters.
    """

    def __init__(
        self, channels: list[int], paper_levels: PaperLevels | None = None, normalisation: str = "instance"
    ) -> None:
        super().__init__()
        self.paper_levels = paper_levels
        self.normalisation = normalisation
        if len(channels) < 2:
            raise ValueError(f"a U-Net needs at least two levels, got channels={channels}")
        self.channels = list(channels)
        self.size_multiple = 2 ** (len(channels) - 1)

        self.encoder = nn.ModuleList(
            DoubleConv(in_channels, out_channels, normalisation)
            for in_channels, out_channels in zip([1, *channels[:-1]], channels, strict=True)
        )
        self.downsample = nn.MaxPool2d(kernel_size=2)
        self.decoder = nn.ModuleList(
            UpLevel(channels[level + 1], channels[level], normalisation) for level in reversed(range(len(channels) - 1))
        )
        self.to_image = nn.Conv2d(channels[0], 1, kernel_size=1)
        self._start_as_identity()


class ResidualBlock(nn.Module):
    """conv3x3 + norm + ReLU + conv3x3 + norm, added to its input, then ReLU (He et al.)."""

    def __init__(self, channels: int, normalisation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, normalisation),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            normalisation_layer(normalisation, channels),
        )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, features: Tensor) -> Tensor:
        # features: (batch, channels, h, w)
        return self.activation(features + self.body(features))


class ResidualLevel(nn.Sequential):
    """A conv to the level's width, then ``residual_blocks`` residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, residual_blocks: int, normalisation: str) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, normalisation),
            *(ResidualBlock(out_channels, normalisation) for _ in range(residual_blocks)),
        )


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., Attention U-Net): weights each skip position in [0, 1].

    The gating signal is the decoder feature already upsampled to the skip's resolution, rather than the
    coarser map with a strided skip projection of the paper: the same gate, without a resampling of the weights.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inner_channels: int) -> None:
        super().__init__()
        self.project_skip = nn.Conv2d(skip_channels, inner_channels, kernel_size=1, bias=False)
        self.project_gate = nn.Conv2d(gate_channels, inner_channels, kernel_size=1)
        self.activation = nn.ReLU(inplace=True)
        self.to_weight = nn.Conv2d(inner_channels, 1, kernel_size=1)

    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        # skip: (batch, skip_channels, h, w) encoder features; gate: (batch, gate_channels, h, w) decoder features
        combined = self.activation(self.project_skip(skip) + self.project_gate(gate))
        return skip * torch.sigmoid(self.to_weight(combined))


class AttentionUpLevel(nn.Module):
    """Decoder level: upsample x2, gate the encoder skip with the upsampled features, concatenate, fuse."""

    def __init__(self, in_channels: int, out_channels: int, residual_blocks: int, normalisation: str) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.gate = AttentionGate(out_channels, out_channels, max(1, out_channels // 2))
        self.fuse = ResidualLevel(2 * out_channels, out_channels, residual_blocks, normalisation)

    def forward(self, features: Tensor, skip: Tensor) -> Tensor:
        # features: (batch, in_channels, h, w); skip: (batch, out_channels, 2h, 2w)
        upsampled = self.upsample(features)
        return self.fuse(torch.cat([upsampled, self.gate(skip, upsampled)], dim=1))


class ResidualUnetGenerator(UnetBase):
    """U-Net whose levels are residual blocks and whose skip connections pass through attention gates."""

    def __init__(
        self,
        channels: list[int],
        residual_blocks: int,
        paper_levels: PaperLevels | None = None,
        normalisation: str = "instance",
    ) -> None:
        super().__init__()
        self.paper_levels = paper_levels
        self.normalisation = normalisation
        if len(channels) < 2:
            raise ValueError(f"a U-Net needs at least two levels, got channels={channels}")
        if residual_blocks < 1:
            raise ValueError(f"residual_blocks must be at least 1, got {residual_blocks}")
        self.channels = list(channels)
        self.residual_blocks = residual_blocks
        self.size_multiple = 2 ** (len(channels) - 1)

        self.encoder = nn.ModuleList(
            ResidualLevel(in_channels, out_channels, residual_blocks, normalisation)
            for in_channels, out_channels in zip([1, *channels[:-1]], channels, strict=True)
        )
        self.downsample = nn.MaxPool2d(kernel_size=2)
        self.decoder = nn.ModuleList(
            AttentionUpLevel(channels[level + 1], channels[level], residual_blocks, normalisation)
            for level in reversed(range(len(channels) - 1))
        )
        self.to_image = nn.Conv2d(channels[0], 1, kernel_size=1)
        self._start_as_identity()


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Pad bottom and right, replicating the border, so that height and width are multiples of ``multiple``."""
    # images: (batch, channels, height, width)
    height, width = images.shape[-2:]
    padded_height = -(-height // multiple) * multiple
    padded_width = -(-width // multiple) * multiple
    if padded_height == multiple and padded_width == multiple:
        # A norm needs more than one position per channel, also at the 1 x 1 bottleneck of a tiny input (InstanceNorm
        # always; BatchNorm in training with a batch of one).
        padded_width = 2 * multiple
    # Replicate, not zeros: a zero (black) border would look like ink to every level of the network.
    return F.pad(images, (0, padded_width - width, 0, padded_height - height), mode="replicate")
