"""Paper levels: every image a generator sees has its paper brought to one brightness first.

A generator trained on bright paper reads the dark troughs of dark, textured paper as ink: on DIBCO 2011-PR7
(leather-grained board, paper at 139 of 255, its typewritten ink at 91) a model restored the paper into specks
of ink. Bringing the paper to the brightness the model knows first (``target``) removes the specks: the same
checkpoint scored F-measure 49.43 on PR7 without and 87.46 with it (README, "Paper levels").

Each image of a batch is multiplied by one gain, ``target / paper``, where ``paper`` is the image's ``quantile``
(most of a line or a page is paper, so a high quantile of its pixels is the paper's brightness, not the ink's).
The gain never darkens (at least 1) and is at most ``max_gain``. Columns that are pure white from top to bottom
do not count: they are a batch's padding (lines are padded with white paper to the batch's width), so a line is
levelled the same whether it is restored alone or beside a longer one. The levelling is part of the generator's
forward: training, validation, evaluation and inference see the same thing by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

WHITE = 0.999
"""A pixel at least this bright is white paper (or padding)."""
MAX_PIXELS_PER_IMAGE = 1 << 16
"""The quantile is taken over a regular subsample (every n-th row and column) of at most about this many pixels per
image, so the sort behind it stays cheap whatever the window size."""


@dataclass(frozen=True)
class PaperLevels:
    quantile: float
    target: float
    max_gain: float


def paper_gains(images: Tensor, levels: PaperLevels) -> Tensor:
    """Each image's gain, shape (batch,): ``target / paper`` within [1, ``max_gain``]; 1 for an image that has
    no column with anything but white."""
    # images: (batch, 1, height, width), values in [0, 1]
    batch, _, height, width = images.shape
    pixels = images.detach().float()
    padding = (pixels >= WHITE).all(dim=2, keepdim=True).expand_as(pixels)
    stride = max(1, math.ceil(math.sqrt(height * width / MAX_PIXELS_PER_IMAGE)))
    sampled = pixels.masked_fill(padding, float("nan"))[:, :, ::stride, ::stride].reshape(batch, -1)
    paper = torch.nanquantile(sampled, levels.quantile, dim=1)
    gains = (levels.target / paper.clamp_min(1e-3)).clamp(1.0, levels.max_gain)
    return torch.where(torch.isnan(paper), torch.ones_like(gains), gains)


def level_paper(images: Tensor, levels: PaperLevels | None) -> Tensor:
    """``images`` with each one's paper brought to ``levels.target`` (unchanged when ``levels`` is None)."""
    # images: (batch, 1, height, width), values in [0, 1]; returns the same shape and dtype
    if levels is None:
        return images
    gains = paper_gains(images, levels).to(images.dtype)
    return (images * gains.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
