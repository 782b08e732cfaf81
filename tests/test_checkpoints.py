"""The checkpoint owner: names, which file a setting points at, the typed payloads on disk, and a file that is no
checkpoint of this project as one error naming key and file, never torch's advice to load it unsafely."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    CHECKPOINT_NAMES,
    FORMAT_VERSION,
    CheckpointError,
    GanCheckpoint,
    RecognizerCheckpoint,
    ReferenceRecognizers,
    best_of_metric,
    checkpoint_file,
    copy_checkpoint,
    load_checkpoint,
    load_gan_checkpoint,
    resolve_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
    save_gan_checkpoint,
)
from htr_pipeline.config import EvaluationConfig, PatchDiscriminatorConfig, RecognizerConfig, UnetGeneratorConfig
from htr_pipeline.metric_names import MONITOR_MODES
from tests.trained_runs import TINY_RUN_CONFIG, tiny_gan_checkpoint, tiny_run_metadata

KEY = "training.resume_from"


# ---------------------------------------------------------------------------------- names and resolution


def _folder_of_run(run_id: str) -> str:
    return f"/runs/{run_id}"


def test_null_names_the_latest_run_a_pt_file_itself_and_anything_else_a_run_id():
    assert resolve_checkpoint(None, "best", "/latest", _folder_of_run) == Path("/latest/best.pt")
    assert resolve_checkpoint("/models/mine.pt", "best", "/latest", _folder_of_run) == Path("/models/mine.pt")
    assert resolve_checkpoint("abc123", "best_cer", "/latest", _folder_of_run) == Path("/runs/abc123/best_cer.pt")


def test_null_without_a_run_folder_says_what_to_set():
    with pytest.raises(CheckpointError, match="no training run folder"):
        resolve_checkpoint(None, "best", None, _folder_of_run)
    assert resolve_checkpoint("/models/mine.pt", "best", None, _folder_of_run) == Path("/models/mine.pt")


def test_every_metric_that_can_pick_the_best_model_has_its_own_checkpoint_name():
    assert {best_of_metric(metric) for metric in MONITOR_MODES} == set(CHECKPOINT_NAMES) - {"best", "last"}
    with pytest.raises(ValueError, match="no checkpoint keeps the best epoch of 'val/wer'"):
        best_of_metric("val/wer")


def test_the_config_accepts_exactly_the_checkpoint_names():
    for name in CHECKPOINT_NAMES:
        assert EvaluationConfig(checkpoint_name=name).checkpoint_name == name
    with pytest.raises(ValueError, match="checkpoint_name"):
        EvaluationConfig(checkpoint_name="best_wer")


# ---------------------------------------------------------------------------------------------- payloads


def _same(first: GanCheckpoint, second: GanCheckpoint) -> bool:
    def plain(checkpoint: GanCheckpoint) -> str:
        return repr({name: value for name, value in dataclasses.asdict(checkpoint).items()})

    return plain(first) == plain(second)


def test_a_gan_checkpoint_round_trips_through_its_file_with_the_format_version(tmp_path: Path):
    written = tiny_gan_checkpoint(tiny_run_metadata())
    path = checkpoint_file(tmp_path, "last")
    save_gan_checkpoint(written, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temporary file was renamed, not left
    on_disk = torch.load(path, map_location="cpu", weights_only=True)
    assert on_disk["format_version"] == FORMAT_VERSION
    assert on_disk["reference_recognizers"]["judge"]["seed"] == 7  # one flat mapping, as before the dataclass
    read = load_gan_checkpoint(path, KEY)
    assert _same(read, written)
    assert read.run_metadata(path).reference_recognizers["judge"].details == {"seed": 7}
    in_loop = read.recognizer_checkpoint(path)
    assert (in_loop.config, in_loop.mlflow_run_id) == (RecognizerConfig(variant="crnn"), "run-1")


def test_a_gan_checkpoint_without_run_metadata_names_what_it_lacks(tmp_path: Path):
    path = tmp_path / "best.pt"
    save_gan_checkpoint(tiny_gan_checkpoint(None), path)
    read = load_gan_checkpoint(path, KEY)
    assert read.run is None and read.epoch == 3
    with pytest.raises(CheckpointError, match=r"best\.pt is no GAN checkpoint with run metadata .* lacks \['charset'"):
        read.run_metadata(path)


def test_a_recognizer_checkpoint_is_no_gan_checkpoint(tmp_path: Path):
    path = tmp_path / "recognizer.pt"
    charset = Charset.from_texts(["ab"])
    save_checkpoint(RecognizerCheckpoint({"w": torch.ones(1)}, RecognizerConfig(), charset).to_state(), path)
    with pytest.raises(CheckpointError, match=r"recognizer\.pt is no GAN training checkpoint .* lacks \['generator'"):
        load_gan_checkpoint(path, KEY)
    loaded = RecognizerCheckpoint.from_state(load_checkpoint(path, KEY), path)
    assert loaded.details == {"format_version": FORMAT_VERSION} and loaded.mlflow_run_id is None


def test_a_checkpoint_reads_back_as_typed_objects_with_its_config_validated(tmp_path: Path):
    path = tmp_path / "last.pt"
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), path)
    run = load_gan_checkpoint(path, KEY).run_metadata(path)
    assert run.charset == Charset.from_texts(["ab"])
    assert run.config == TINY_RUN_CONFIG and run.config.data.image_height == 32
    assert run.generator_config == UnetGeneratorConfig(variant="unet", channels=[4, 8])
    assert isinstance(run.discriminator_config, PatchDiscriminatorConfig)
    assert run.reference_recognizers["judge"].config == RecognizerConfig()


def test_a_stored_config_the_schema_no_longer_accepts_names_the_file_and_the_key(tmp_path: Path):
    path = tmp_path / "last.pt"
    state = tiny_gan_checkpoint(tiny_run_metadata()).to_state()
    state["config"]["training"]["patience"] = 15  # the previous system's launcher's flat key
    state["recognizer_config"]["lstm_hidden"] = 0
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError) as raised:
        load_gan_checkpoint(path, KEY)
    message = str(raised.value)
    assert message.startswith(f"{path}: the settings stored in this checkpoint do not fit this project's schema")
    assert "config.training.patience: unknown key" in message
    assert "recognizer_config.lstm_hidden: Input should be greater than or equal to 1" in message


def test_a_key_the_schema_gained_since_is_a_default_in_the_config_and_absent_as_stored(tmp_path: Path):
    path = tmp_path / "last.pt"
    state = tiny_gan_checkpoint(tiny_run_metadata()).to_state()
    del state["config"]["training"]["gradient_spike_factor"]
    save_checkpoint(state, path)
    run = load_gan_checkpoint(path, KEY).run_metadata(path)
    assert run.config.training.gradient_spike_factor == 10.0
    assert "gradient_spike_factor" not in run.config_as_stored["training"]
    assert run.to_state()["config"] == state["config"]  # written back as it was read


def test_reference_recognizers_round_trip_by_name(tmp_path: Path):
    path = tmp_path / "reference_recognizers.pt"
    charset = Charset.from_texts(["ab"])
    judge = RecognizerCheckpoint({"w": torch.ones(1)}, RecognizerConfig(lstm_hidden=8), charset, {"seed": 7})
    save_checkpoint(ReferenceRecognizers(charset, {"judge": judge}).to_state(), path)
    read = ReferenceRecognizers.from_state(load_checkpoint(path, KEY), path)
    assert read.charset == charset and list(read.recognizers) == ["judge"]
    assert read.recognizers["judge"].config.lstm_hidden == 8 and read.recognizers["judge"].details == {"seed": 7}
    assert ReferenceRecognizers.from_state(ReferenceRecognizers(charset).to_state(), path).recognizers == {}


# ------------------------------------------------------------------------------------- files that are not


def _load_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, KEY)
    message = str(raised.value)
    assert "weights_only" not in message
    assert message.startswith(f"{KEY}: '{path}'") and message.endswith(f"point {KEY} at another checkpoint.")
    return message


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path):
    path = tmp_path / "last.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "(4,096 bytes) is not a checkpoint of this project: it is no tensors-only PyTorch file" in _load_error(path)


def test_a_truncated_checkpoint_says_so(tmp_path: Path):
    path = tmp_path / "last.pt"
    save_checkpoint({"weights": torch.zeros(64, 64)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "is not a checkpoint of this project, or it is truncated: its zip archive is incomplete" in _load_error(path)


def test_a_pickled_object_is_not_loaded(tmp_path: Path):
    path = tmp_path / "model.pt"
    torch.save({"where": Path("x")}, path)
    assert "it is no tensors-only PyTorch file" in _load_error(path)


def test_another_format_names_the_key(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=rf"{KEY}: '.*other\.pt' holds checkpoint format None, not this"):
        load_checkpoint(path, KEY)


# ------------------------------------------------------------------------------- random states, copies


class FakeCudaRandom:
    """torch.cuda's random-state calls on a machine with ``devices`` GPUs; touching a device that is not there
    fails as CUDA does, and reading a state is recorded (it would start CUDA in a process without it)."""

    def __init__(self, devices: int, initialised: bool):
        self.devices = devices
        self.initialised = initialised
        self.states_read = 0
        self.restored: dict[int, torch.Tensor] = {}

    def get_rng_state_all(self) -> list[torch.Tensor]:
        self.states_read += 1
        return [torch.full((16,), index, dtype=torch.uint8) for index in range(self.devices)]

    def set_rng_state(self, state: torch.Tensor, device: int | str = "cuda") -> None:
        index = device if isinstance(device, int) else 0
        if index >= self.devices:
            raise RuntimeError("CUDA error: invalid device ordinal")
        self.restored[index] = state

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: self.initialised)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.devices)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", self.get_rng_state_all)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda.random, "set_rng_state", self.set_rng_state)


def test_random_states_of_a_cpu_run_leave_cuda_alone(monkeypatch: pytest.MonkeyPatch):
    cuda = FakeCudaRandom(devices=2, initialised=False)  # a GPU machine, a run on its CPU
    cuda.install(monkeypatch)
    states = rng_states()
    assert cuda.states_read == 0 and "cuda" not in states


def test_each_cuda_devices_random_state_is_saved(monkeypatch: pytest.MonkeyPatch):
    cuda = FakeCudaRandom(devices=2, initialised=True)
    cuda.install(monkeypatch)
    assert [state[0].item() for state in rng_states()["cuda"]] == [0, 1]


def test_a_run_resumed_on_fewer_gpus_restores_the_devices_it_has(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    saved = {**rng_states(), "cuda": [torch.full((16,), index, dtype=torch.uint8) for index in range(2)]}
    cuda = FakeCudaRandom(devices=1, initialised=True)
    cuda.install(monkeypatch)
    with caplog.at_level("INFO", logger="htr_pipeline.checkpoints"):
        restore_rng_states(saved)
    assert list(cuda.restored) == [0] and torch.equal(cuda.restored[0], saved["cuda"][0])
    assert "2 CUDA device(s); 1 restored" in caplog.text


def test_a_copied_checkpoint_is_the_same_file_under_another_name_until_one_is_saved_again(tmp_path: Path):
    first = tmp_path / "best.pt"
    save_checkpoint({"epoch": 1}, first)
    copy = tmp_path / "last.pt"
    copy_checkpoint(first, copy)
    assert load_checkpoint(copy, KEY)["epoch"] == 1 and copy.read_bytes() == first.read_bytes()
    save_checkpoint({"epoch": 2}, copy)
    assert load_checkpoint(first, KEY)["epoch"] == 1 and load_checkpoint(copy, KEY)["epoch"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left


def test_a_format_1_checkpoint_restores_its_generator_without_paper_levels_as_it_was_trained(tmp_path: Path):
    """Files written before the generator levelled its inputs (format 1) hold generator settings without
    ``paper_levels``; the schema's default would level them, so reading one sets it to null, in both places the
    run's settings hold the generator, and leaves the config as stored (the config audit compares it) alone."""
    run = tiny_run_metadata()
    state = tiny_gan_checkpoint(run).to_state()
    for generator in (state["generator_config"], state["config"]["training"]["generator"]):
        del generator["paper_levels"]
    path = tmp_path / "old.pt"
    torch.save({**state, "format_version": 1}, path)
    old = load_gan_checkpoint(path, KEY).run_metadata(path)
    assert old.generator_config.paper_levels is None
    assert old.config.training.generator.paper_levels is None
    assert "paper_levels" not in old.config_as_stored["training"]["generator"]
    torch.save({**state, "format_version": FORMAT_VERSION}, path)  # the same settings in today's format
    assert load_gan_checkpoint(path, KEY).run_metadata(path).generator_config.paper_levels is not None
    save_gan_checkpoint(tiny_gan_checkpoint(run), path)
    assert load_gan_checkpoint(path, KEY).run_metadata(path).generator_config == run.generator_config
    torch.save({**state, "format_version": 0}, path)
    with pytest.raises(CheckpointError, match="holds checkpoint format 0, not this project's 2"):
        load_gan_checkpoint(path, KEY)


def test_a_resume_stops_in_one_line_when_the_generators_paper_levels_differ_from_the_run(tmp_path: Path):
    """A run trained before paper levels (format 1) resumed under today's default would see levelled inputs from
    the resumed epoch on: the resume stops before any work and says which value continues the run."""
    from htr_pipeline.config import TrainingConfig
    from htr_pipeline.training.stages import resumed_checkpoint

    state = tiny_gan_checkpoint(tiny_run_metadata()).to_state()
    for generator in (state["generator_config"], state["config"]["training"]["generator"]):
        del generator["paper_levels"]
    path = tmp_path / "old.pt"
    torch.save({**state, "format_version": 1}, path)
    generator = {"variant": "unet", "channels": [4, 8]}
    settings = {"resume_from": str(path), "epochs": 10, "generator": generator}
    with pytest.raises(CheckpointError, match=r"paper_levels null, .* Set training.generator.paper_levels to null"):
        resumed_checkpoint(TrainingConfig.model_validate(settings))
    without = {**settings, "generator": {**generator, "paper_levels": None}}
    assert resumed_checkpoint(TrainingConfig.model_validate(without))[1].epoch == 3
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), path)  # today's format, today's default
    assert resumed_checkpoint(TrainingConfig.model_validate(settings))[1].epoch == 3


def test_a_resume_stops_in_one_line_naming_each_generator_setting_that_differs_from_the_run(tmp_path: Path):
    """The resumed epochs train the generator the checkpoint holds: another normalisation (other layers and
    statistics) or other sizes stop the resume before any work, naming each setting and the value that continues."""
    from htr_pipeline.config import TrainingConfig
    from htr_pipeline.training.stages import resumed_checkpoint

    path = tmp_path / "last.pt"
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), path)  # unet [4, 8], instance
    other = {"variant": "unet", "channels": [4, 16], "normalisation": "batch"}
    settings = {"resume_from": str(path), "epochs": 10, "generator": other}
    with pytest.raises(CheckpointError) as raised:
        resumed_checkpoint(TrainingConfig.model_validate(settings))
    assert str(raised.value) == (
        f'training.resume_from: {path} (MLflow run run-1) trained its generator with normalisation "instance" and '
        'channels [4, 8], training.generator.normalisation is "batch" and training.generator.channels is [4, 16]: '
        "the resumed epochs would train another generator. Set training.generator.normalisation to "
        '"instance" and training.generator.channels to [4, 8] to continue the run'
    )
    same = {**settings, "generator": {"variant": "unet", "channels": [4, 8], "normalisation": "instance"}}
    assert resumed_checkpoint(TrainingConfig.model_validate(same))[1].epoch == 3


def test_generator_settings_stored_before_the_normalisation_setting_restore_instance_norm(tmp_path: Path):
    """Every checkpoint written before ``normalisation`` existed was trained with InstanceNorm: the schema's
    default, and what such a file reads back as."""
    state = tiny_gan_checkpoint(tiny_run_metadata()).to_state()
    for generator in (state["generator_config"], state["config"]["training"]["generator"]):
        del generator["normalisation"]
    path = tmp_path / "before.pt"
    save_checkpoint(state, path)
    run = load_gan_checkpoint(path, KEY).run_metadata(path)
    assert run.generator_config.normalisation == "instance"
    assert run.config.training.generator.normalisation == "instance"
