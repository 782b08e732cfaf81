"""One function restores images with a generator: validation, evaluation and inference all use it."""

from __future__ import annotations

import torch

from htr_pipeline.restoring import restore_images


class _Overshooting(torch.nn.Module):
    """Outputs beyond [0, 1], as half-precision rounding can."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * 1.5 - 0.25


def test_restored_images_are_fp32_within_the_unit_range_at_every_precision():
    degraded = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    for precision in ("fp32", "bf16"):
        restored = restore_images(_Overshooting(), degraded, precision)
        assert restored.dtype == torch.float32
        assert float(restored.min()) == 0.0 and float(restored.max()) == 1.0
    assert torch.equal(restore_images(_Overshooting(), degraded), (degraded * 1.5 - 0.25).clamp(0, 1))
