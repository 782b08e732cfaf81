"""The gate between the stages: a recognizer that does not read stops training before any GAN epoch, and the
recipe pieces that get a CTC recognizer off the all-blank plateau (schedule, plateau-aware stopping, shortcut,
augmentation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from htr_pipeline.checkpoints import save_checkpoint
from htr_pipeline.config import AugmentationConfig, EvaluationConfig, RecognizerPretrainingConfig
from htr_pipeline.evaluation.run import evaluate_split
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.trained_run import TrainedRun
from htr_pipeline.training.augmentation import augment_lines
from htr_pipeline.training.early_stopping import PlateauAwareEarlyStopping
from htr_pipeline.training.recognizer_training import (
    RecognizerDoesNotReadError,
    check_recognizer_reads,
    learning_rate_factor,
)
from htr_pipeline.training.stages import load_recognizer, recognizer_stage, reference_recognizers_stage
from tests.pipeline_runs import run_session, tiny_parameters
from tests.training.test_training_behaviour import LineData, MemoryTracker, line_data, tiny_config  # noqa: F401


@pytest.mark.slow
def test_a_recognizer_that_cannot_learn_stops_the_training_node_before_any_gan_epoch(kedro_project: Path):
    parameters = tiny_parameters()
    parameters["data"]["sources"][0]["lines_per_split"] = {"train": 8, "valid": 4, "test": 2}
    parameters["training"] = {
        **parameters["training"],
        "recognizer_pretraining": {"epochs": 1, "batch_size": 4, "max_val_cer": 0.05},
    }
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))

    run_session(kedro_project, "data_ingestion")
    with pytest.raises(RecognizerDoesNotReadError) as error:
        run_session(kedro_project, "training")

    message = str(error.value)
    assert message.startswith("The pre-trained recognizer (stage 1) does not read: its best val CER is ")
    assert "after 1 epoch (2 optimiser steps), above training.recognizer_pretraining.max_val_cer=0.05" in message
    assert "No GAN epoch was run against it. Try: more epochs" in message
    assert "\n" not in message
    checkpoints = list((kedro_project / "data" / "06_models").rglob("*.pt"))
    assert checkpoints == [], checkpoints  # neither the recognizer nor any GAN checkpoint was saved
    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project.as_posix()}/mlflow.db")
    experiment = client.get_experiment_by_name("htr_pipeline")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    training_run = runs[0]
    assert training_run.info.status == "FAILED"
    assert not [key for key in training_run.data.metrics if key.startswith(("train/", "val/"))]
    assert "recognizer/val_cer" in training_run.data.metrics


def test_the_gate_applies_to_a_recognizer_loaded_from_a_checkpoint(tmp_path: Path, line_data: LineData):  # noqa: F811
    config = tiny_config()
    torch.manual_seed(0)
    untrained = build_recognizer(config.recognizer, line_data.charset.num_classes)
    path = tmp_path / "untrained.pt"
    save_checkpoint(
        {
            "recognizer": untrained.state_dict(),
            "recognizer_config": config.recognizer.model_dump(mode="json"),
            "charset": line_data.charset.to_dict(),
        },
        path,
    )
    gated = tiny_config(
        recognizer_checkpoint=str(path), recognizer_pretraining={"epochs": 1, "batch_size": 4, "max_val_cer": 0.5}
    )
    with pytest.raises(RecognizerDoesNotReadError, match=rf"The recognizer of {path} does not read: its best val CER"):
        recognizer_stage(line_data.manifest, line_data.store, line_data.charset, gated, MemoryTracker())


def test_the_gate_passes_a_recognizer_at_or_below_the_threshold():
    settings = RecognizerPretrainingConfig(max_val_cer=0.5)
    check_recognizer_reads(0.5, settings, "a recognizer", 3, 30)
    with pytest.raises(RecognizerDoesNotReadError, match=r"best val CER is 0\.501 after 3 epochs \(30 optimiser"):
        check_recognizer_reads(0.501, settings, "a recognizer", 3, 30)


def test_patience_never_counts_on_the_blank_plateau():
    stopper = PlateauAwareEarlyStopping(patience=2, patience_from=0.9, min_steps=0)
    plateau = [1.0, 0.99, 1.0, 1.0, 0.995, 1.0, 1.0, 1.0]
    assert not any(stopper.update(epoch, cer, steps=100 * epoch).should_stop for epoch, cer in enumerate(plateau, 1))
    assert not stopper.update(9, 0.6, steps=900).should_stop  # the first reading epoch: patience starts here
    assert not stopper.update(10, 0.61, steps=1000).should_stop
    decision = stopper.update(11, 0.62, steps=1100)
    assert decision.should_stop and decision.best_epoch == 9 and decision.best_value == 0.6


def test_patience_waits_for_the_minimum_steps():
    stopper = PlateauAwareEarlyStopping(patience=1, patience_from=0.9, min_steps=500)
    stopper.update(1, 0.5, steps=100)
    assert not stopper.update(2, 0.6, steps=200).should_stop
    assert stopper.update(3, 0.6, steps=500).should_stop


def test_the_learning_rate_warms_up_linearly_then_follows_the_cosine_down_to_one_percent():
    settings = RecognizerPretrainingConfig(warmup_steps=10, schedule="cosine")
    factor = learning_rate_factor(settings, total_steps=110)
    assert [round(factor(step), 3) for step in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert factor(10) == pytest.approx(1.0) and factor(60) == pytest.approx(0.505)
    assert factor(110) == pytest.approx(0.01) and factor(500) == pytest.approx(0.01)
    constant = learning_rate_factor(RecognizerPretrainingConfig(warmup_steps=0, schedule="constant"), 100)
    assert {constant(step) for step in (0, 50, 99)} == {1.0}


def test_the_ctc_shortcut_head_reads_the_trunk_columns_and_can_be_left_out():
    config = tiny_config().recognizer
    with_shortcut = build_recognizer(config, num_classes=7)
    output = with_shortcut(torch.rand(2, 1, 32, 64))
    assert output.logits.shape == output.shortcut_logits.shape == (2, 16, 7)
    without = build_recognizer(config.model_copy(update={"ctc_shortcut": False}), num_classes=7)
    assert without(torch.rand(2, 1, 32, 64)).shortcut_logits is None
    assert not [name for name in without.state_dict() if name.startswith("shortcut")]


def test_augmentation_is_seeded_keeps_the_padding_paper_and_changes_lines(line_data: LineData):  # noqa: F811
    # images: (2, 1, 32, width + 16): a real line padded on the right with 16 px of paper
    line = torch.from_numpy(line_data.store.read(line_data.manifest["clean_path"].iloc[0])).float() / 255
    width = line.shape[1]
    images = torch.ones(2, 1, 32, width + 16)
    images[:, 0, :, :width] = line
    widths = torch.tensor([width, width])
    settings = AugmentationConfig(probability=1.0)
    first = augment_lines(images, widths, settings, torch.Generator().manual_seed(3))
    again = augment_lines(images, widths, settings, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert not torch.allclose(first, images, atol=1e-3)
    assert torch.all(first[..., width:] == 1.0)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert (first < 0.5).sum() > 0.3 * (images < 0.5).sum()  # still ink, not a blank page
    untouched = augment_lines(images, widths, settings.model_copy(update={"probability": 0.0}), torch.Generator())
    assert torch.equal(untouched, images)


def test_the_judge_and_the_degraded_trained_baseline_are_trained_apart_and_each_read_the_split(
    line_data: LineData,  # noqa: F811
):
    config = tiny_config(baselines=["degraded_trained"])
    tracker = MemoryTracker()
    states = reference_recognizers_stage(line_data.manifest, line_data.store, line_data.charset, config, tracker)
    judge, baseline = states.recognizers["judge"], states.recognizers["degraded_trained"]
    assert set(states.recognizers) == {"judge", "degraded_trained"} and states.charset == line_data.charset
    assert (judge.details["trained_on"], judge.details["seed"]) == ("clean", config.judge.seed)
    assert (baseline.details["trained_on"], baseline.details["seed"]) == ("degraded", config.seed)
    assert judge.config == config.judge.recognizer
    assert {"judge/val_cer", "degraded_trained/val_cer"} <= set(tracker.history)

    charset = line_data.charset
    references = {
        name: load_recognizer(states.recognizers[name], charset, states.recognizers[name].config, Path(name))
        for name in ("judge", "degraded_trained")
    }
    torch.manual_seed(0)
    models = TrainedRun(
        path=Path("tiny models"),
        description="tiny models",
        charset=charset,
        recognizers={"in_loop": build_recognizer(config.recognizer, charset.num_classes).eval(), **references},
        recognizer_config=config.recognizer,
        generator=build_generator(config.generator).eval(),
        generator_config=config.generator,
    )
    evaluation = EvaluationConfig(
        split="valid", device="cpu", bootstrap_resamples=100, log_models=False, gallery_lines=2
    )
    result = evaluate_split(line_data.manifest, line_data.store, charset, models, evaluation)
    summary = result.summary
    assert summary["recognizers"] == ["in_loop", "judge", "degraded_trained"]
    assert summary["headline_recognizer"] == "judge"
    valid_lines = int((line_data.manifest["split"] == "valid").sum())
    assert result.samples.groupby("recognizer").size().to_dict() == dict.fromkeys(summary["recognizers"], valid_lines)
    # The baseline reads the degraded lines as they are: no restored column, no gain.
    baseline = summary["degraded_trained"]
    assert baseline["cer_corpus_restored"] is None and baseline["cer_reduction"] is None
    assert baseline["cer_corpus_degraded"] is not None
    assert summary["judge"]["cer_corpus_restored"] is not None
    assert "## Readability by `degraded_trained`" in result.report and "degraded-trained baseline" in result.report
