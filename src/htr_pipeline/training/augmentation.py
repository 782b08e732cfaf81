"""Standard HTR augmentation of clean lines for recognizer training: small affine and elastic warps, stroke
erosion/dilation and contrast, applied per line on the batch's device with a seeded generator.

Only the recognizers' training reads augmented lines (stage 1, the judge, the degraded-trained baseline): the GAN
always sees the pairs as they are, since its pixel loss compares with the clean line.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from htr_pipeline.config import AugmentationConfig


def augment_lines(images: Tensor, widths: Tensor, settings: AugmentationConfig, generator: torch.Generator) -> Tensor:
    """A randomly warped, thickened or thinned and re-contrasted copy of each line; the padding stays paper.

    ``generator`` lives on the CPU so that the draws are the same on every device.
    """
    # images: (batch, 1, height, width), values in [0, 1], white paper = 1; widths: (batch,) px before padding
    ink = 1.0 - images  # ink high, so the zeros that grid_sample and pooling pad with are paper
    batch = images.shape[0]
    chosen = _draws(batch, generator) < settings.probability
    if not bool(chosen.any()):
        return images
    ink = _warp(ink, widths, settings, generator)
    ink = _morphology(ink, settings, generator)
    ink = ink * _uniform(batch, 1.0 - settings.contrast, 1.0, generator).to(ink).view(-1, 1, 1, 1)
    # The padding goes back to paper: no ink outside each line's own width.
    augmented = 1.0 - ink.clamp(0.0, 1.0) * _inside_widths(images, widths)
    selected = chosen.to(images.device).view(-1, 1, 1, 1)
    return torch.where(selected, augmented, images)


def _warp(ink: Tensor, widths: Tensor, settings: AugmentationConfig, generator: torch.Generator) -> Tensor:
    """Rotation, shear and scale about each line's own centre, plus a smooth elastic displacement (in pixels)."""
    batch, _, height, width = ink.shape
    angle = _uniform(batch, -settings.rotation_degrees, settings.rotation_degrees, generator) * math.pi / 180
    shear = _uniform(batch, -settings.shear, settings.shear, generator)
    scale = 1.0 + _uniform(batch, -settings.scale, settings.scale, generator)
    # Where each output pixel samples from: the inverse of the drawn transform, about the line's centre. Built on
    # the images' device (the draws travel there, nothing comes back), so a GPU step never waits on the host.
    on_device = {"device": ink.device, "dtype": torch.float32}
    rows = torch.arange(height, **on_device).view(1, -1, 1)
    columns = torch.arange(width, **on_device).view(1, 1, -1)
    centre_x = (widths.to(**on_device) / 2).view(-1, 1, 1)
    centre_y = (height - 1) / 2
    dx, dy = columns - centre_x, rows - centre_y
    angle, shear, scale = (draw.to(**on_device).view(-1, 1, 1) for draw in (angle, shear, scale))
    cos, sin = torch.cos(angle), torch.sin(angle)
    source_x = centre_x + (cos * dx - sin * dy + shear * dy) / scale
    source_y = centre_y + (sin * dx + cos * dy) / scale
    if settings.elastic_px > 0:
        coarse = torch.randn(batch, 2, max(height // 16, 2), max(width // 16, 2), generator=generator)
        displacement = F.interpolate(coarse.to(**on_device), size=(height, width), mode="bicubic", align_corners=False)
        source_x = source_x + settings.elastic_px * displacement[:, 0]
        source_y = source_y + settings.elastic_px * displacement[:, 1]
    grid = torch.stack([(2 * source_x + 1) / width - 1, (2 * source_y + 1) / height - 1], dim=-1)
    return F.grid_sample(ink, grid.to(ink), mode="bilinear", padding_mode="zeros", align_corners=False)


def _morphology(ink: Tensor, settings: AugmentationConfig, generator: torch.Generator) -> Tensor:
    """Each line's strokes dilated or eroded by one 3 x 3 step, or left alone, with equal odds."""
    if settings.morphology_probability <= 0:
        return ink
    batch = ink.shape[0]
    dilated = F.max_pool2d(ink, kernel_size=3, stride=1, padding=1)
    eroded = -F.max_pool2d(-ink, kernel_size=3, stride=1, padding=1)
    draw = _draws(batch, generator)
    thicker = draw < settings.morphology_probability / 2
    thinner = ~thicker & (draw < settings.morphology_probability)
    which = torch.where(thicker, 1, torch.where(thinner, 2, 0))
    which = which.to(ink.device).view(-1, 1, 1, 1)
    return torch.where(which == 1, dilated, torch.where(which == 2, eroded, ink))


def _inside_widths(images: Tensor, widths: Tensor) -> Tensor:
    columns = torch.arange(images.shape[-1], device=images.device)
    return (columns.view(1, 1, 1, -1) < widths.to(images.device).view(-1, 1, 1, 1)).to(images.dtype)


def _draws(batch: int, generator: torch.Generator) -> Tensor:
    return torch.rand(batch, generator=generator)


def _uniform(batch: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator)
