"""Validation on real pages: which pages (the valid split's page pairs, no other), and what their score says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from htr_pipeline.config import ConfigError, RealPaperConfig, validate_parameters
from htr_pipeline.evaluation.page_validation import (
    pages_to_validate_on,
    score_validation_pages,
    validation_page_pairs,
    validation_pages,
)
from htr_pipeline.metrics import binarise, dibco_scores
from tests.conftest import small_synthetic_parameters
from tests.data.test_real_paper import write_page_pairs, write_page_scans


def _paper(tmp_path: Path) -> RealPaperConfig:
    pairs = write_page_pairs(tmp_path / "pairs", ["p0", "p1", "p2", "p3"])
    scans = write_page_scans(tmp_path / "scans", ["s0", "s1"])
    return RealPaperConfig.model_validate(
        {
            "folders": [
                {"kind": "page_scans", "name": "scans", "path": str(scans)},
                {"kind": "page_pairs", "name": "pairs", "path": str(pairs)},
            ]
        }
    )


def test_the_pages_validated_on_are_the_page_pairs_the_valid_lines_were_composed_on(tmp_path: Path) -> None:
    paper = _paper(tmp_path)
    manifest = pd.DataFrame(
        {
            "split": ["train", "train", "valid", "valid", "valid", "valid", "test"],
            "paper_page": ["pairs:p0", "pairs:p1", "pairs:p2", "pairs:p2", "scans:s1", None, "pairs:p3"],
        }
    )
    (pair,) = validation_page_pairs(manifest, paper)
    assert (pair.page, pair.scan_path.name, pair.ground_truth_path.name) == ("pairs:p2", "p2.png", "p2_gt.png")
    # A scan without ground truth (page_scans) has nothing to score against; procedural paper has no pages.
    assert validation_page_pairs(manifest.assign(paper_page=None), paper) == []
    assert validation_page_pairs(manifest, None) == []


class _WhitePaper(nn.Module):
    """Restores everything to blank paper: no ink found, F-measure 0."""

    size_multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a generator has parameters: the device is theirs

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(degraded)


class _Darkening(nn.Module):
    """Multiplies the page by 0.9: Otsu finds the same ink, the score is the scan's."""

    size_multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.9))

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        return degraded * self.gain


def test_a_page_scores_its_f_measure_against_the_ground_truth_as_the_real_test_scores_it(tmp_path: Path) -> None:
    paper = _paper(tmp_path)
    manifest = pd.DataFrame({"split": ["valid", "valid"], "paper_page": ["pairs:p1", "pairs:p3"]})
    pairs = validation_page_pairs(manifest, paper)
    expected = []
    for pair in pairs:
        scan = np.asarray(Image.open(pair.scan_path).convert("L"))
        truth = np.asarray(Image.open(pair.ground_truth_path).convert("L")) < 128
        expected.append(dibco_scores(binarise(scan, "otsu"), truth)["f_measure"])
    scans = pages_to_validate_on(pairs).scans_f_measure
    assert scans == pytest.approx(np.mean(expected)) and 50 < scans < 100
    assert score_validation_pages(pairs, _Darkening()) == pytest.approx(scans, abs=0.5)
    assert score_validation_pages(pairs, _WhitePaper()) == 0.0
    # What the training loop is handed: the pages' names and the same score.
    pages = validation_pages(manifest, paper)
    assert pages.names == pages_to_validate_on(pairs).names == ("pairs:p1", "pairs:p3")
    assert pages.scans_f_measure == scans and pages.score(_WhitePaper()) == 0.0
    assert validation_pages(manifest, None) is None


def test_monitoring_real_pages_without_page_pairs_stops_before_any_work() -> None:
    parameters = small_synthetic_parameters(train=8, valid=4, test=4)
    parameters["training"] = {"monitor": "val/page_f_measure"}
    with pytest.raises(ConfigError) as raised:
        validate_parameters(parameters)
    assert str(raised.value) == (
        "training.monitor: val/page_f_measure scores the valid split's real page pairs, and data.real_paper.folders "
        "has no folder of kind page_pairs; add one, or monitor val/combined"
    )
