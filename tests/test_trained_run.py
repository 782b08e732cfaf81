"""One loader of a trained run (generator, recognizers by role, charset, config) for evaluation, inference,
diagnostics and logged models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import CheckpointError, RecognizerCheckpoint, save_gan_checkpoint
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.trained_run import TrainedRun, load_trained_run
from tests.trained_runs import TINY_GENERATOR, TINY_JUDGE, TINY_RECOGNIZER, TINY_RUN_CONFIG, tiny_trained_checkpoint

KEY = "evaluation.checkpoint"


@pytest.fixture
def checkpoint_path(tmp_path: Path) -> Path:
    path = tmp_path / "gan_checkpoints" / "best.pt"
    save_gan_checkpoint(tiny_trained_checkpoint(seed=5), path)
    return path


def test_a_trained_run_rebuilds_every_model_of_its_checkpoint_strictly(checkpoint_path: Path):
    run = load_trained_run(checkpoint_path, KEY)
    torch.manual_seed(5)
    expected_generator = build_generator(TINY_GENERATOR).eval()
    expected_recognizer = build_recognizer(TINY_RECOGNIZER, run.charset.num_classes).eval()
    images = torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(run.generator(images), expected_generator(images))
        assert torch.equal(run.recognizer(images).logits, expected_recognizer(images).logits)
    assert list(run.recognizers) == ["in_loop", "judge"]
    assert not any(model.training for model in (run.generator, *run.recognizers.values()))
    assert run.charset == Charset.from_texts(["ab"]) and run.recognizer_config == TINY_RECOGNIZER
    assert run.config is not None and run.config.data == TINY_RUN_CONFIG.data
    assert (run.epoch, run.mlflow_run_id, run.size_multiple) == (3, "run-1", 2)
    assert run.description == f"{checkpoint_path} (epoch 3, MLflow run run-1)"  # outside the project: as given
    assert run.model_configs == {
        "recognizer": TINY_RECOGNIZER.model_dump(mode="json"),
        "generator": TINY_GENERATOR.model_dump(mode="json"),
    }


def test_lines_of_another_charset_are_refused_before_any_reading(checkpoint_path: Path):
    run = load_trained_run(checkpoint_path, KEY)
    run.check_charset(Charset.from_texts(["ab"]))
    with pytest.raises(CheckpointError, match=r"another charset .* only here: \['c'\]"):
        run.check_charset(Charset.from_texts(["abc"]))


def test_a_reference_recognizer_trained_on_another_charset_is_refused(tmp_path: Path):
    checkpoint = tiny_trained_checkpoint()
    judge = checkpoint.run.reference_recognizers["judge"]
    other = dataclasses.replace(judge, charset=Charset.from_texts(["ax"]))  # as many symbols, another one
    run = dataclasses.replace(checkpoint.run, reference_recognizers={"judge": other})
    path = tmp_path / "best.pt"
    save_gan_checkpoint(dataclasses.replace(checkpoint, run=run), path)
    with pytest.raises(CheckpointError, match=r"another charset .* only in the checkpoint: \['x'\]"):
        load_trained_run(path, KEY)


def test_a_recognizer_checkpoint_is_a_run_without_generator(tmp_path: Path):
    charset = Charset.from_texts(["ab"])
    torch.manual_seed(0)
    judge = build_recognizer(TINY_JUDGE, charset.num_classes)
    run = TrainedRun.from_recognizer_checkpoint(
        RecognizerCheckpoint(judge.state_dict(), TINY_JUDGE, charset), tmp_path / "recognizer.pt"
    )
    assert run.generator is None and run.config is None and list(run.recognizers) == ["in_loop"]
    assert run.description.startswith("recognizer of ") and run.model_configs == {
        "recognizer": TINY_JUDGE.model_dump(mode="json")
    }
    with pytest.raises(ValueError, match="holds no generator"):
        _ = run.size_multiple
