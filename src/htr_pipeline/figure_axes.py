"""Axis rules every figure of the project follows, so a picture reads the same wherever it is drawn."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

RATE_METRICS = ("cer", "wer", "ssim")
"""Metrics that are rates: 0 is perfect (CER, WER) or nothing (SSIM), 1 a whole line wrong (or identical)."""


def is_rate(metric: str) -> bool:
    """``val/cer``, ``cer_restored``, ``ssim``: a name whose last part starts with a rate metric."""
    return metric.rsplit("/", 1)[-1].split("_", 1)[0] in RATE_METRICS


def rate_axis(axes: Any, values: Iterable[float], axis: str = "y") -> None:
    """A rate's axis from 0 to 1 (further when a CER exceeds 1), whatever the data: a constant CER does not
    become a 0.96-1.04 axis, and two runs' figures compare by eye."""
    finite = np.asarray([value for value in values if np.isfinite(value)], dtype=np.float64)
    top = max(1.0, float(finite.max()) if finite.size else 1.0)
    margin = 0.03 * top
    (axes.set_ylim if axis == "y" else axes.set_xlim)(-margin, top + margin)


def integer_axis(axes: Any, axis: str = "x") -> None:
    """Ticks on whole numbers only (epochs, counts): no 1.25 epoch."""
    (axes.xaxis if axis == "x" else axes.yaxis).set_major_locator(MaxNLocator(integer=True))
