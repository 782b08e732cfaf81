"""Validation on real pages: the page pairs of ``data.real_paper`` that the split assignment gave to ``valid``.

The valid lines say how well a generator undoes the synthesis; they do not say how it restores a real scan. At the
main job's scale, runs that differ only by their GAN seed part by 6 F-measure on the 16 DIBCO 2011 pages while the
seed that restores real pages worst scores best on the valid lines (README: "Choosing a model on real pages").
Where ``data.real_paper`` takes its paper from ``page_pairs`` folders, the pages of the valid split are real
degraded pages with a binarization ground truth that no train line's paper came from: every validation restores
them whole, as the real test restores its pages (:func:`htr_pipeline.inference.restorers.page_restorer`, the real
test's default window, binarisation and scores), and logs their mean F-measure as ``val/page_f_measure``
(``val_degraded/page_f_measure`` for the scans themselves), which ``training.monitor`` can select by.

The training loop is handed the pages as :class:`~htr_pipeline.training.validation.ValidationPages` (what to call
them, how to score a generator on them), built here, above it: training does not restore pages itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import pandas as pd
import torch
from torch import nn

from htr_pipeline.config import RealPaperConfig, RealTestConfig
from htr_pipeline.data.real_paper import list_paper_pages
from htr_pipeline.evaluation.real_scans import RealPagePair, score_real_pages
from htr_pipeline.inference.restorers import page_restorer
from htr_pipeline.training.validation import ValidationPages

PAGE_SCORING = RealTestConfig.model_construct()
"""The real test's defaults (window, overlap, Otsu) without its folders, which validation does not read: a valid
page is restored whole at its own size and scored as a test page is (a folder's ``scale`` says how its paper meets
the lines, not how its pages are restored)."""


def validation_pages(manifest: pd.DataFrame, real_paper: RealPaperConfig | None) -> ValidationPages | None:
    """The valid split's real page pairs as the training loop scores them; None where there are none."""
    pairs = validation_page_pairs(manifest, real_paper)
    return pages_to_validate_on(pairs) if pairs else None


def pages_to_validate_on(pairs: Sequence[RealPagePair]) -> ValidationPages:
    """The pages, with the scans' own score taken once here (it does not change from epoch to epoch)."""
    pairs = tuple(pairs)
    scans, _ = score_real_pages(pairs, lambda page: page, PAGE_SCORING, progress="validation: real pages, scans")
    names = tuple(pair.page for pair in pairs)
    return ValidationPages(names, float(scans["degraded_f_measure"].mean()), partial(score_validation_pages, pairs))


def validation_page_pairs(manifest: pd.DataFrame, real_paper: RealPaperConfig | None) -> list[RealPagePair]:
    """The ``page_pairs`` pages whose paper the manifest's valid lines were composed on (the valid split's pages
    that have a ground truth), in folder order; none without real paper or without such a folder."""
    if real_paper is None or "paper_page" not in manifest:
        return []
    valid_pages = set(manifest.loc[manifest["split"] == "valid", "paper_page"].dropna())
    pairs = []
    for position, folder in enumerate(real_paper.folders):
        if folder.kind != "page_pairs":
            continue
        pages, _ = list_paper_pages(folder, position)
        pairs += [
            RealPagePair(page.page_id, page.scan_path, page.ground_truth_path)
            for page in pages
            if page.page_id in valid_pages and page.ground_truth_path is not None
        ]
    return pairs


def score_validation_pages(pairs: Sequence[RealPagePair], generator: nn.Module) -> float:
    """Mean F-measure over ``pairs`` of the page restored by ``generator`` on its own device, binarised by Otsu
    against its ground truth."""
    device = next(generator.parameters(), torch.empty(0)).device
    restore = page_restorer(generator, device, generator.size_multiple, PAGE_SCORING)
    table, _ = score_real_pages(pairs, restore, PAGE_SCORING, progress="validation: real pages")
    return float(table["restored_f_measure"].mean())
