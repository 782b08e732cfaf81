"""The names of the validation metrics, as training logs them and model selection reads them.

Kept apart from :mod:`htr_pipeline.metrics` (which defines how each is computed) so that the config schema can
name its monitors without importing jiwer, scikit-image and scipy.
"""

from __future__ import annotations

from typing import Literal

VALIDATION_SCORES = ("cer", "wer", "psnr", "ssim", "combined")
"""What every validation logs, each as ``<prefix>/<score>`` (``val/cer``; ``val_degraded/cer`` for the input)."""

VALIDATION_PREFIX = "val"

PAGE_SCORE = "page_f_measure"
"""What validation on real pages logs (``val/page_f_measure``), where the valid split has real page pairs."""
PAGE_MONITOR = f"{VALIDATION_PREFIX}/{PAGE_SCORE}"
"""The monitor that needs real page pairs in the valid split (``data.real_paper`` with a ``page_pairs`` folder)."""

MONITOR_MODES: dict[str, Literal["min", "max"]] = {
    f"{VALIDATION_PREFIX}/cer": "min",
    f"{VALIDATION_PREFIX}/psnr": "max",
    f"{VALIDATION_PREFIX}/ssim": "max",
    f"{VALIDATION_PREFIX}/combined": "max",
    PAGE_MONITOR: "max",
}
"""The validation metrics a model can be selected by, and whether lower or higher is better. ``val/page_f_measure``
is logged only by runs that validate on real pages (:mod:`htr_pipeline.evaluation.page_validation`)."""

Monitor = Literal[tuple(MONITOR_MODES)]  # type: ignore[valid-type]


def validation_metric(score: str, prefix: str = VALIDATION_PREFIX) -> str:
    """The logged name of a validation score: ``validation_metric("cer") == "val/cer"``."""
    if score not in (*VALIDATION_SCORES, PAGE_SCORE):
        raise ValueError(f"unknown validation score {score!r}; expected one of {(*VALIDATION_SCORES, PAGE_SCORE)}")
    return f"{prefix}/{score}"
