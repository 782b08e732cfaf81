"""Models logged to MLflow load back as weights plus settings, never by unpickling a file of the run."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.config import RecognizerConfig, UnetGeneratorConfig
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.tracking import LOGGED_WEIGHTS_FOLDER, load_logged_generator, load_logged_model, log_models
from htr_pipeline.trained_run import TrainedRun

GENERATOR = {"variant": "unet", "channels": [4, 8]}
RECOGNIZER = {"conv_channels": [4, 8], "width_downsampling": 4, "lstm_hidden": 8, "lstm_layers": 1}


@pytest.fixture
def store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_name="logged_models")
    yield uri
    mlflow.set_tracking_uri(None)


def _models() -> TrainedRun:
    torch.manual_seed(0)
    return TrainedRun(
        path=Path("built here"),
        description="built here",
        charset=Charset(tuple("abcdef")),
        recognizers={"in_loop": build_recognizer(RecognizerConfig.model_validate(RECOGNIZER), 7).eval()},
        recognizer_config=RecognizerConfig.model_validate(RECOGNIZER),
        generator=build_generator(UnetGeneratorConfig.model_validate(GENERATOR)).eval(),
        generator_config=UnetGeneratorConfig.model_validate(GENERATOR),
    )


def test_logged_generator_and_recognizer_are_rebuilt_from_weights_and_settings(store: str):
    models = _models()
    with mlflow.start_run() as run:
        log_models(models, example=np.ones((1, 1, 32, 64), dtype=np.float32))
    images = torch.rand(1, 1, 32, 96)  # another width than the example
    generator = load_logged_generator(run.info.run_id, store)
    recognizer = load_logged_model(run.info.run_id, "recognizer", store)
    with torch.no_grad():
        assert torch.equal(generator(images), models.generator(images))
        assert torch.equal(recognizer(images).logits, models.recognizer(images).logits)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path.cwd() / "payload_ran",))


def test_a_weights_file_that_would_run_code_is_refused_and_never_run(store: str, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with mlflow.start_run() as run:
        log_models(_models(), example=np.ones((1, 1, 32, 64), dtype=np.float32))
        hostile = tmp_path / "generator.pt"
        hostile.write_bytes(pickle.dumps({"weight": _Payload()}))
        mlflow.log_artifact(str(hostile), LOGGED_WEIGHTS_FOLDER)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_logged_generator(run.info.run_id, store)
    assert not (tmp_path / "payload_ran").exists()


def test_a_generator_logged_before_paper_levels_is_rebuilt_without_them(store: str, tmp_path: Path):
    """Settings logged by an older version lack ``paper_levels``; the schema's default would level the inputs of a
    generator that was trained on them as they were."""
    with mlflow.start_run() as run:
        log_models(_models(), example=np.ones((1, 1, 32, 64), dtype=np.float32))
        settings_file = Path(
            mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{LOGGED_WEIGHTS_FOLDER}/generator.json")
        )
        settings = json.loads(settings_file.read_text())
        assert settings["config"]["paper_levels"] is not None
        del settings["config"]["paper_levels"]
        older = tmp_path / "generator.json"
        older.write_text(json.dumps(settings))
        mlflow.log_artifact(str(older), LOGGED_WEIGHTS_FOLDER)
    assert load_logged_generator(run.info.run_id, store).paper_levels is None
