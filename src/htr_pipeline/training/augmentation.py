"""Standard HTR augmentation of clean lines for recognizer training: small affine and elastic warps, stroke
erosion/dilation and contrast, applied per line on the batch's device with a seeded generator.

Only the recognizers' training reads augmented lines (stage 1, the judge, the degraded-trained baseline): the GAN
always sees the pairs as they are, since its pixel loss compares with the clean line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from htr_pipeline.config import AugmentationConfig
from htr_pipeline.devices import to_device_async


def augment_lines(images: Tensor, widths: Tensor, settings: AugmentationConfig, generator: torch.Generator) -> Tensor:
    """A randomly warped, thickened or thinned and re-contrasted copy of each line; the padding stays paper.

    ``generator`` lives on the CPU so that the draws are the same on every device. They are all made first, in
    one order, then travel to the images' device in one queued copy per tensor: nothing on a GPU waits for them.
    """
    # images: (batch, 1, height, width), values in [0, 1], white paper = 1; widths: (batch,) px before padding,
    # on the images' device
    batch, _, height, width = images.shape
    chosen_draws = _draws(batch, generator)
    if not bool((chosen_draws < settings.probability).any()):  # a CPU tensor: no wait for the device
        return images
    draws = LineDraws.draw(batch, height, width, settings, generator).to(images.device)
    angle, shear, scale, morphology, contrast = draws.per_line.unbind(dim=1)
    ink = 1.0 - images  # ink high, so the zeros that grid_sample and pooling pad with are paper
    ink = _warp(ink, widths, angle, shear, scale, settings.elastic_px, draws.elastic)
    ink = _morphology(ink, settings, morphology)
    ink = ink * contrast.to(ink).view(-1, 1, 1, 1)
    # The padding goes back to paper: no ink outside each line's own width.
    augmented = 1.0 - ink.clamp(0.0, 1.0) * _inside_widths(images, widths)
    selected = (to_device_async(chosen_draws, images.device) < settings.probability).view(-1, 1, 1, 1)
    return torch.where(selected, augmented, images)


@dataclass(frozen=True)
class LineDraws:
    """Every random number the augmentation of one batch uses, drawn on the CPU in a fixed order."""

    per_line: Tensor
    """(batch, 5) float32: rotation (radians), shear, scale, morphology draw, contrast factor."""
    elastic: Tensor | None
    """(batch, 2, coarse_height, coarse_width) float32 displacement field, before upsampling; None without one."""

    @classmethod
    def draw(
        cls, batch: int, height: int, width: int, settings: AugmentationConfig, generator: torch.Generator
    ) -> LineDraws:
        angle = _uniform(batch, -settings.rotation_degrees, settings.rotation_degrees, generator) * math.pi / 180
        shear = _uniform(batch, -settings.shear, settings.shear, generator)
        scale = 1.0 + _uniform(batch, -settings.scale, settings.scale, generator)
        elastic = (
            torch.randn(batch, 2, max(height // 16, 2), max(width // 16, 2), generator=generator)
            if settings.elastic_px > 0
            else None
        )
        morphology = _draws(batch, generator) if settings.morphology_probability > 0 else torch.zeros(batch)
        contrast = _uniform(batch, 1.0 - settings.contrast, 1.0, generator)
        return cls(torch.stack([angle, shear, scale, morphology, contrast], dim=1), elastic)

    def to(self, device: torch.device) -> LineDraws:
        elastic = None if self.elastic is None else to_device_async(self.elastic, device)
        return LineDraws(to_device_async(self.per_line, device), elastic)


def _warp(
    ink: Tensor, widths: Tensor, angle: Tensor, shear: Tensor, scale: Tensor, elastic_px: float, elastic: Tensor | None
) -> Tensor:
    """Rotation, shear and scale about each line's own centre, plus a smooth elastic displacement (in pixels)."""
    # angle, shear, scale: (batch,); elastic: (batch, 2, coarse_height, coarse_width) or None
    _, _, height, width = ink.shape
    # Where each output pixel samples from: the inverse of the drawn transform, about the line's centre, built on
    # the images' device.
    on_device = {"device": ink.device, "dtype": torch.float32}
    rows = torch.arange(height, **on_device).view(1, -1, 1)
    columns = torch.arange(width, **on_device).view(1, 1, -1)
    centre_x = (widths.to(**on_device) / 2).view(-1, 1, 1)
    centre_y = (height - 1) / 2
    dx, dy = columns - centre_x, rows - centre_y
    angle, shear, scale = (draw.view(-1, 1, 1) for draw in (angle, shear, scale))
    cos, sin = torch.cos(angle), torch.sin(angle)
    source_x = centre_x + (cos * dx - sin * dy + shear * dy) / scale
    source_y = centre_y + (sin * dx + cos * dy) / scale
    if elastic is not None:
        displacement = F.interpolate(elastic, size=(height, width), mode="bicubic", align_corners=False)
        source_x = source_x + elastic_px * displacement[:, 0]
        source_y = source_y + elastic_px * displacement[:, 1]
    grid = torch.stack([(2 * source_x + 1) / width - 1, (2 * source_y + 1) / height - 1], dim=-1)
    return F.grid_sample(ink, grid.to(ink), mode="bilinear", padding_mode="zeros", align_corners=False)


def _morphology(ink: Tensor, settings: AugmentationConfig, draw: Tensor) -> Tensor:
    """Each line's strokes dilated or eroded by one 3 x 3 step, or left alone, with equal odds."""
    # draw: (batch,) uniform in [0, 1)
    if settings.morphology_probability <= 0:
        return ink
    dilated = F.max_pool2d(ink, kernel_size=3, stride=1, padding=1)
    eroded = -F.max_pool2d(-ink, kernel_size=3, stride=1, padding=1)
    thicker = draw < settings.morphology_probability / 2
    thinner = ~thicker & (draw < settings.morphology_probability)
    which = torch.where(thicker, 1, torch.where(thinner, 2, 0)).view(-1, 1, 1, 1)
    return torch.where(which == 1, dilated, torch.where(which == 2, eroded, ink))


def _inside_widths(images: Tensor, widths: Tensor) -> Tensor:
    columns = torch.arange(images.shape[-1], device=images.device)
    return (columns.view(1, 1, 1, -1) < widths.to(images.device).view(-1, 1, 1, 1)).to(images.dtype)


def _draws(batch: int, generator: torch.Generator) -> Tensor:
    return torch.rand(batch, generator=generator)


def _uniform(batch: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator)
