"""Metric definitions: hand-checked CER/WER, corpus vs per-line averages, empty references, PSNR/SSIM edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from htr_pipeline.metrics import (
    MAX_PSNR_DB,
    character_error_rates,
    combined_score,
    corpus_rate,
    mean_per_line,
    psnr_db,
    ssim,
    word_error_rates,
)


def test_cer_of_one_substitution_in_three_characters():
    rates = character_error_rates(["abc"], ["abd"])
    assert rates.corpus == pytest.approx(1 / 3)
    assert rates.per_line == [pytest.approx(1 / 3)]
    assert (rates.edits, rates.reference_length) == (1, 3)


def test_corpus_cer_weighs_lines_by_length_unlike_the_per_line_mean():
    rates = character_error_rates(["a", "abcdefghij"], ["b", "abcdefghij"])
    assert rates.corpus == pytest.approx(1 / 11)
    assert rates.mean_per_line == pytest.approx(0.5)
    assert rates.per_line == [1.0, 0.0]


def test_cer_counts_insertions_deletions_and_spaces():
    # "ab cd" -> "abcdx": delete the space, insert x
    rates = character_error_rates(["ab cd"], ["abcdx"])
    assert rates.edits == 2
    assert rates.corpus == pytest.approx(2 / 5)


def test_wer_counts_words():
    rates = word_error_rates(["the cat sat", "hello"], ["the bat sat", "hello world"])
    assert (rates.edits, rates.reference_length) == (2, 4)
    assert rates.corpus == pytest.approx(0.5)
    assert rates.per_line == [pytest.approx(1 / 3), 1.0]


def test_empty_reference_scores_one_per_line_and_adds_its_insertions_to_the_corpus():
    rates = character_error_rates(["", "abcd", ""], ["xyz", "abcd", ""])
    assert rates.per_line == [1.0, 0.0, 0.0]
    assert (rates.edits, rates.reference_length) == (3, 4)
    assert rates.corpus == pytest.approx(3 / 4)
    assert rates.mean_per_line == pytest.approx(1 / 3)


def test_all_empty_references_never_divide_by_zero():
    assert character_error_rates([""], [""]).corpus == 0.0
    spurious = character_error_rates(["", ""], ["ab", ""])
    assert spurious.corpus == 2.0  # edits over a reference-length floor of 1
    assert spurious.per_line == [1.0, 0.0]
    assert word_error_rates([" "], ["two words"]).per_line == [1.0]


def test_error_rates_reject_mismatched_or_missing_lines():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        character_error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no lines"):
        character_error_rates([], [])
    with pytest.raises(TypeError):
        character_error_rates("abc", "abd")


def test_psnr_of_identical_images_is_the_documented_maximum():
    image = np.random.default_rng(0).random((8, 16))
    assert psnr_db(image, image.copy()) == MAX_PSNR_DB


def test_psnr_of_a_known_mse():
    clean = np.zeros((8, 16))
    candidate = np.full((8, 16), 0.1)  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert psnr_db(clean, candidate) == pytest.approx(20.0)


def test_psnr_rejects_images_outside_the_unit_range_or_of_other_shapes():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr_db(np.zeros((4, 4)), np.full((4, 4), 255.0))
    with pytest.raises(ValueError, match="shape"):
        psnr_db(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(1).random((32, 64))
    assert ssim(image, image.copy()) == pytest.approx(1.0)


def test_ssim_of_images_smaller_than_the_default_window():
    rng = np.random.default_rng(2)
    clean = rng.random((5, 40))
    assert ssim(clean, clean.copy()) == pytest.approx(1.0)
    assert ssim(clean, rng.random((5, 40))) < 0.9
    assert math.isfinite(ssim(rng.random((4, 4)), rng.random((4, 4))))
    with pytest.raises(ValueError, match="at least 3 px"):
        ssim(np.zeros((2, 10)), np.zeros((2, 10)))


def test_combined_score_matches_the_previous_systems_report():
    assert combined_score(29.90, 0.0631, 50.0) == pytest.approx(26.745)


def test_corpus_rate_from_per_line_counts_is_the_corpus_rate_of_the_lines():
    references, hypotheses = ["abcd", "abcdefghij", ""], ["abxx", "abcdefghiz", "x"]
    rates = character_error_rates(references, hypotheses)
    per_line_edits = [character_error_rates([r], [h]).edits for r, h in zip(references, hypotheses, strict=True)]
    assert corpus_rate(per_line_edits, [4, 10, 0]) == rates.corpus == (2 + 1 + 1) / 14
    assert corpus_rate([3], [0]) == 3.0, "an empty reference floors the length at 1"
    with pytest.raises(ValueError, match="no lines to score"):
        corpus_rate([], [])
    with pytest.raises(ValueError, match="2 edit counts but 1 reference lengths"):
        corpus_rate([1, 2], [3])


def test_mean_per_line_weighs_every_line_the_same():
    assert mean_per_line([20.0, 22.0, 18.0]) == 20.0
    with pytest.raises(ValueError, match="no lines to average"):
        mean_per_line([])
