"""Per-line scoring with real (tiny, untrained) models on real line batches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.config import RecognizerConfig, UnetGeneratorConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.evaluation.aggregates import summarise
from htr_pipeline.evaluation.scoring import restore_lines, score_samples
from htr_pipeline.metrics import MAX_PSNR_DB, character_error_rates, combined_score, psnr_db
from htr_pipeline.models.registry import build_generator, build_recognizer
from htr_pipeline.scoring.lines import COLUMNS, RecognizerReading, score_line_tables
from htr_pipeline.training.validation import score_lines

HEIGHT = 16
CPU = torch.device("cpu")


@pytest.fixture
def charset() -> Charset:
    return Charset.from_texts(["abc de", "fgh"])


@pytest.fixture
def recognizer(charset: Charset) -> torch.nn.Module:
    torch.manual_seed(0)
    config = RecognizerConfig(conv_channels=[8, 16], width_downsampling=4, lstm_hidden=16, lstm_layers=1)
    return build_recognizer(config, charset.num_classes)


@pytest.fixture
def generator() -> torch.nn.Module:
    """The identity (its last conv starts at zero), with the input fed as it is: no paper levels."""
    torch.manual_seed(0)
    return build_generator(UnetGeneratorConfig(variant="unet", channels=[8, 16], paper_levels=None))


def make_batch(texts: list[str], widths: list[int], seed: int, first_id: int = 0, identical: bool = False) -> LineBatch:
    """Lines padded with paper to a multiple of 8 px; values kept inside the generator's identity range."""
    rng = np.random.default_rng(seed)
    padded_width = math.ceil(max(widths) / 8) * 8
    clean = torch.ones(len(texts), 1, HEIGHT, padded_width)
    degraded = torch.ones_like(clean)
    for index, width in enumerate(widths):
        line = torch.from_numpy(rng.uniform(0.05, 0.95, size=(HEIGHT, width))).float()
        clean[index, 0, :, :width] = line
        noise = torch.from_numpy(rng.uniform(-0.04, 0.04, size=(HEIGHT, width))).float()
        degraded[index, 0, :, :width] = line if identical else (line + noise).clamp(0.0, 1.0)
    return LineBatch(
        sample_ids=[f"line_{first_id + index}" for index in range(len(texts))],
        degraded=degraded,
        clean=clean,
        widths=torch.tensor(widths, dtype=torch.int64),
        labels=torch.zeros(len(texts), 1, dtype=torch.int64),
        label_lengths=torch.zeros(len(texts), dtype=torch.int64),
        texts=texts,
    )


@pytest.fixture
def batches() -> list[LineBatch]:
    return [
        make_batch(["abc de", "fgh"], [40, 24], seed=1),
        make_batch(["", "de fgh a"], [32, 48], seed=2, first_id=2),
    ]


def test_one_row_per_line_in_input_order_with_every_column(batches, generator, recognizer, charset):
    samples = score_samples(batches, generator, recognizer, charset, CPU)
    assert list(samples.columns) == COLUMNS
    assert samples["sample_id"].tolist() == ["line_0", "line_1", "line_2", "line_3"]
    assert samples["reference"].tolist() == ["abc de", "fgh", "", "de fgh a"]
    assert samples["has_text"].tolist() == [True, True, False, True]
    assert samples["width"].tolist() == [40, 24, 32, 48]
    assert samples["char_reference_length"].tolist() == [6, 3, 0, 8]
    assert samples["word_reference_length"].tolist() == [2, 1, 0, 3]


def test_per_line_error_rates_are_against_the_ground_truth(batches, generator, recognizer, charset):
    samples = score_samples(batches, generator, recognizer, charset, CPU)
    for _, row in samples[samples["has_text"]].iterrows():
        for variant in ("degraded", "restored", "clean"):
            rates = character_error_rates([row["reference"]], [row[f"reading_{variant}"]])
            assert row[f"char_edits_{variant}"] == rates.edits
            assert row[f"cer_{variant}"] == pytest.approx(rates.corpus)


def test_a_line_without_text_has_no_error_rates(batches, generator, recognizer, charset):
    row = score_samples(batches, generator, recognizer, charset, CPU).iloc[2]
    assert math.isnan(row["cer_degraded"]) and math.isnan(row["wer_restored"])
    assert pd.isna(row["char_edits_clean"])
    assert isinstance(row["reading_degraded"], str)


def test_identity_generator_scores_restored_like_degraded(batches, generator, recognizer, charset):
    samples = score_samples(batches, generator, recognizer, charset, CPU)
    assert samples["reading_restored"].tolist() == samples["reading_degraded"].tolist()
    assert samples["psnr_db_restored"].to_numpy() == pytest.approx(samples["psnr_db_degraded"].to_numpy(), abs=1e-3)
    assert samples["ssim_restored"].to_numpy() == pytest.approx(samples["ssim_degraded"].to_numpy(), abs=1e-4)


def test_image_metrics_use_each_line_cropped_to_its_width(batches, generator, recognizer, charset):
    samples = score_samples(batches, generator, recognizer, charset, CPU)
    batch = batches[0]
    width = int(batch.widths[1])
    expected = psnr_db(batch.clean[1, 0, :, :width].numpy(), batch.degraded[1, 0, :, :width].numpy())
    assert samples.loc[1, "psnr_db_degraded"] == pytest.approx(expected)


def test_identical_images_score_max_psnr(generator, recognizer, charset):
    batch = make_batch(["abc", "de"], [24, 16], seed=3, identical=True)
    samples = score_samples([batch], generator, recognizer, charset, CPU)
    assert samples["psnr_db_degraded"].tolist() == [MAX_PSNR_DB, MAX_PSNR_DB]
    assert samples["ssim_degraded"].tolist() == pytest.approx([1.0, 1.0])


def test_recognizer_only_leaves_the_restored_columns_empty(batches, recognizer, charset):
    samples = score_samples(batches, None, recognizer, charset, CPU)
    assert samples["reading_restored"].isna().all()
    assert samples["cer_restored"].isna().all() and samples["psnr_db_restored"].isna().all()
    assert samples["char_edits_restored"].isna().all()
    assert samples.loc[samples["has_text"], "cer_clean"].notna().all()


def test_models_are_scored_in_eval_mode_and_given_back_as_they_came(batches, generator, recognizer, charset):
    recognizer.train()
    seen_modes = []
    recognizer.register_forward_hook(lambda module, inputs, output: seen_modes.append(module.training))
    score_samples(batches, generator, recognizer, charset, CPU)
    assert seen_modes and not any(seen_modes)
    assert recognizer.training and generator.training


def test_restore_lines_crops_each_line_to_its_width(batches, generator):
    restored = restore_lines(batches[0], generator, CPU)
    assert [image.shape for image in restored] == [(HEIGHT, 40), (HEIGHT, 24)]
    assert all(image.min() >= 0.0 and image.max() <= 1.0 for image in restored)
    assert restored[0] == pytest.approx(batches[0].degraded[0, 0, :, :40].numpy(), abs=1e-4)


def test_summary_recomputed_from_the_stored_table_is_identical(batches, generator, recognizer, charset, tmp_path: Path):
    samples = score_samples(batches, generator, recognizer, charset, CPU)
    summary = summarise(samples, resamples=200, seed=5)
    samples.to_parquet(tmp_path / "samples.parquet")
    stored = pd.read_parquet(tmp_path / "samples.parquet")
    assert summarise(stored, resamples=200, seed=5) == summary
    with_text = samples[samples["has_text"]]
    assert summary["cer_corpus_degraded"] == pytest.approx(
        character_error_rates(with_text["reference"].tolist(), with_text["reading_degraded"].tolist()).corpus
    )


def test_several_recognizers_read_one_restoration_per_batch_and_score_as_each_alone(
    batches: list[LineBatch], generator: torch.nn.Module, recognizer: torch.nn.Module, charset: Charset
):
    torch.manual_seed(1)
    other = build_recognizer(
        RecognizerConfig(conv_channels=[8, 8], width_downsampling=4, lstm_hidden=8, lstm_layers=1), charset.num_classes
    )
    calls = []
    hook = generator.register_forward_hook(lambda *_: calls.append(1))
    readers = {
        "in_loop": RecognizerReading(recognizer, reads_restored=True),
        "judge": RecognizerReading(other, reads_restored=True),
        "degraded_trained": RecognizerReading(other, reads_restored=False),
    }
    tables = score_line_tables(batches, generator, readers, charset, CPU)
    assert len(calls) == len(batches)  # the generator ran once per batch, not once per recognizer
    hook.remove()
    pd.testing.assert_frame_equal(tables["in_loop"], score_samples(batches, generator, recognizer, charset, CPU))
    pd.testing.assert_frame_equal(tables["judge"], score_samples(batches, generator, other, charset, CPU))
    pd.testing.assert_frame_equal(tables["degraded_trained"], score_samples(batches, None, other, charset, CPU))
    assert not tables["judge"]["reading_restored"].equals(tables["in_loop"]["reading_restored"])


# ------------------------------------------------------- validation: a summary of the same per-line scoring

CER_WEIGHT = 50.0


def test_validation_of_restored_lines_is_the_evaluation_table_summarised(batches, generator, recognizer, charset):
    validation = score_lines(batches, recognizer, charset, CPU, "fp32", CER_WEIGHT, restore=generator)
    table = score_samples(batches, generator, recognizer, charset, CPU)
    evaluation = summarise(table, resamples=10, seed=0)

    assert validation.cer == evaluation["cer_corpus_restored"]
    assert validation.wer == evaluation["wer_corpus_restored"]
    assert validation.psnr_db == evaluation["psnr_db_mean_restored"]
    assert validation.ssim == evaluation["ssim_mean_restored"]
    assert validation.combined == combined_score(validation.psnr_db, validation.cer, CER_WEIGHT)
    assert validation.lines == 4


def test_validation_of_the_degraded_input_summarises_the_degraded_columns(batches, recognizer, charset):
    validation = score_lines(batches, recognizer, charset, CPU, "fp32", CER_WEIGHT)
    evaluation = summarise(score_samples(batches, None, recognizer, charset, CPU), resamples=10, seed=0)
    assert (validation.cer, validation.psnr_db, validation.ssim) == (
        evaluation["cer_corpus_degraded"],
        evaluation["psnr_db_mean_degraded"],
        evaluation["ssim_mean_degraded"],
    )


def test_validation_of_clean_lines_reads_them_and_scores_them_perfect_against_themselves(batches, recognizer, charset):
    validation = score_lines(batches, recognizer, charset, CPU, "fp32", CER_WEIGHT, read_clean=True)
    evaluation = summarise(score_samples(batches, None, recognizer, charset, CPU), resamples=10, seed=0)
    assert validation.cer == evaluation["cer_corpus_clean"]
    assert (validation.psnr_db, validation.ssim) == (MAX_PSNR_DB, 1.0)


def test_validation_without_any_text_is_an_error_not_a_zero(recognizer, charset):
    textless = [make_batch(["", ""], [32, 40], seed=3)]
    with pytest.raises(ValueError, match="no lines to score"):
        score_lines(textless, recognizer, charset, CPU, "fp32", CER_WEIGHT)


def test_scoring_leaves_models_in_the_mode_they_came_in(batches, generator, recognizer, charset):
    generator.train()
    recognizer.train()
    score_lines(batches, recognizer, charset, CPU, "fp32", CER_WEIGHT, restore=generator)
    assert generator.training and recognizer.training
