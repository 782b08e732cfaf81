"""The one owner of checkpoints: their names, their payloads, which file a setting points at, saving and
strict loading.

A GAN training checkpoint (:class:`GanCheckpoint`) holds everything a resumed run needs to continue exactly:
model, optimiser, scheduler and scaler states, the loss balancer, early stopping and best-metric trackers,
gradient statistics history, RNG states, epoch and step, the MLflow run id, and the run's metadata (charset,
validated config, model settings, reference recognizers). A recognizer checkpoint (:class:`RecognizerCheckpoint`)
holds one recognizer with its settings and charset; :class:`ReferenceRecognizers`, the judge and baselines. On
disk each is one flat mapping of tensors and plain Python containers with a ``format_version``, so
``torch.load(..., weights_only=True)`` can read it; the payload classes are the only code that writes or reads
its keys. In memory they hold typed objects: the :class:`~htr_pipeline.charset.Charset`, and every stored setting
validated back into its model of :mod:`htr_pipeline.config` when the file is read (a file whose settings no longer
fit the schema is one error naming the file and the keys).

Its names live in :mod:`htr_pipeline.checkpoint_names` (re-exported here), which the config schema imports to
validate checkpoint names without torch. This module imports nothing of the project but the charset, the config
schema and those names, so training, evaluation, inference, diagnostics and the Kedro datasets can all use it
without depending on one another.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import random
import shutil
import tempfile
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import ValidationError
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoint_names import (  # noqa: F401  (re-exported: every part of a checkpoint is found here)
    BEST,
    CHECKPOINT_NAMES,
    CHECKPOINT_SUFFIX,
    LAST,
    CheckpointName,
    best_of_metric,
    checkpoint_file,
    checkpoint_file_name,
    named_file,
)
from htr_pipeline.config import (
    DataConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    RecognizerConfig,
    StrictModel,
    TrainingConfig,
    describe_validation_error,
    trained_before_paper_levels,
)

StateDict = dict[str, torch.Tensor]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- resolution


def resolve_checkpoint(
    setting: str | None,
    name: CheckpointName,
    default_folder: str | Path | None,
    folder_of_run: Callable[[str], str],
) -> Path:
    """The checkpoint a ``checkpoint`` setting names: null, ``name`` in ``default_folder`` (the latest training
    run's, from ``training_summary``, or the audited run's); a ``.pt`` file; else a training run's MLflow id, whose
    checkpoint folder ``folder_of_run`` finds (the library never talks to MLflow itself)."""
    if setting is None:
        if default_folder is None:
            raise CheckpointError(
                "no checkpoint setting and no training run folder to take the checkpoint from: train first, or "
                "point the checkpoint setting at a .pt file or a training run's MLflow id"
            )
        return checkpoint_file(default_folder, name)
    file = named_file(setting)
    if file is not None:
        return file
    if Path(setting).is_dir():  # not a run id: without this it would be looked up in MLflow, ending in a trace
        files = sorted(path.name for path in Path(setting).rglob(f"*{CHECKPOINT_SUFFIX}"))[:5]
        raise CheckpointError(
            f"checkpoint setting '{setting}' is a folder; name a checkpoint file in it "
            f"({', '.join(files) or f'no *{CHECKPOINT_SUFFIX} file there'}) or a training run's MLflow run id"
        )
    return checkpoint_file(folder_of_run(setting), name)


# ------------------------------------------------------------------------------ the file: saving, loading

FORMAT_VERSION = 2
"""2: generator settings have ``paper_levels``. A version-1 file is still read: its generator restores without
paper levels, as it was trained (:func:`_settings_of_format_1`)."""
READABLE_FORMAT_VERSIONS = (1, 2)
ZIP_MAGIC = b"PK\x03\x04"
"""How every ``torch.save`` file begins: one that does, yet whose archive cannot be read, is cut short."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used here: missing, another charset, or weights of another shape."""


def save_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save({"format_version": FORMAT_VERSION, **state}, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def copy_checkpoint(source: Path, target: Path) -> None:
    """``target`` becomes the checkpoint file ``source`` is: a hard link (no second write), or a copy where the
    file system has none; put in place by a rename, so ``target`` is never half written. A later save of either
    name replaces that name's file and leaves the other as it was."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        os.unlink(temporary)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, config_key: str) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); ``config_key`` names the setting that pointed here."""
    if not Path(path).is_file():
        raise CheckpointError(f"{config_key}: checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        if isinstance(error, PermissionError):
            raise
        # Torch's own message advises weights_only=False, which would run whatever code the file holds.
        with open(path, "rb") as handle:
            truncated = handle.read(4) == ZIP_MAGIC and not isinstance(error, pickle.UnpicklingError)
        raise CheckpointError(
            f"{config_key}: '{path}' ({Path(path).stat().st_size:,} bytes) is not a checkpoint of this project"
            f"{', or it is truncated' if truncated else ''}: "
            f"{'its zip archive is incomplete' if truncated else 'it is no tensors-only PyTorch file'}. "
            f"Re-copy it, or point {config_key} at another checkpoint."
        ) from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version not in READABLE_FORMAT_VERSIONS:
        raise CheckpointError(
            f"{config_key}: '{path}' holds checkpoint format {version!r}, not this project's {FORMAT_VERSION}. "
            f"Point {config_key} at a checkpoint this project wrote."
        )
    return state


def checkpoint_epoch(path: Path) -> int:
    """The epoch a GAN checkpoint was saved at, read without loading its tensors (memory-mapped)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def load_gan_checkpoint(path: Path, config_key: str) -> GanCheckpoint:
    """A GAN training checkpoint, read safely and checked whole; ``config_key`` names the setting."""
    return GanCheckpoint.from_state(load_checkpoint(path, config_key), path)


def save_gan_checkpoint(checkpoint: GanCheckpoint, path: Path) -> None:
    save_checkpoint(checkpoint.to_state(), path)


def load_recognizer_checkpoint(path: Path, config_key: str) -> RecognizerCheckpoint:
    """A recognizer checkpoint (stage 1's, or the recognizer part of a GAN checkpoint), read safely and checked;
    ``config_key`` names the setting."""
    return RecognizerCheckpoint.from_state(load_checkpoint(path, config_key), path)


# ---------------------------------------------------------------------------------------------- payloads

_RECOGNIZER_KEYS = ("recognizer", "recognizer_config", "charset")


def _require(state: Mapping[str, Any], keys: tuple[str, ...], what: str, path: Path | str) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is no {what} of this project: it lacks {missing}. Point the setting at a checkpoint that "
            "the training pipeline wrote."
        )


class TrainedRunConfig(StrictModel):
    """The ``data`` and ``training`` sections a run was trained with, as they were validated when it ran."""

    data: DataConfig
    training: TrainingConfig


class _StoredSettings(StrictModel):
    """The settings a GAN checkpoint stores, validated in one pass so that an error names its key path."""

    config: TrainedRunConfig
    generator_config: GeneratorConfig
    discriminator_config: DiscriminatorConfig
    recognizer_config: RecognizerConfig


_Settings = TypeVar("_Settings", bound=StrictModel)


def _validated(model: type[_Settings], stored: Mapping[str, Any], path: Path | str, key: str = "") -> _Settings:
    """``stored`` validated back into ``model``; a file of another schema is one error naming file and keys."""
    try:
        return model.model_validate(dict(stored))
    except ValidationError as error:
        _, problems = describe_validation_error(error, model, prefix=(key,) if key else ()).split("\n", 1)
        raise CheckpointError(
            f"{path}: the settings stored in this checkpoint do not fit this project's schema (it was written by "
            f"another version of the project):\n{problems}\nUse the version that wrote it, or train anew."
        ) from None


def _stored_charset(stored: Mapping[str, Any], path: Path | str) -> Charset:
    try:
        return Charset.from_dict(stored)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: its charset cannot be read back: {error}") from None


@dataclass(frozen=True)
class RecognizerCheckpoint:
    """One recognizer with the settings and charset it was trained with: stage 1's, a reference recognizer (the
    judge, ``degraded_trained``), or the recognizer part of a GAN checkpoint."""

    weights: StateDict
    config: RecognizerConfig
    """The recognizer is rebuilt from these settings."""
    charset: Charset
    details: dict[str, Any] = field(default_factory=dict)
    """Whatever else the file holds: how it was trained (``seed``, ``trained_on``, ``best_val_cer``,
    ``epochs_run``, ...), or ``taken_from``; the whole GAN state when read from a GAN checkpoint."""

    def to_state(self) -> dict[str, Any]:
        return {
            "recognizer": self.weights,
            "recognizer_config": self.config.model_dump(mode="json"),
            "charset": self.charset.to_dict(),
            **self.details,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], path: Path | str) -> RecognizerCheckpoint:
        _require(state, _RECOGNIZER_KEYS, "recognizer checkpoint", path)
        return cls(
            weights=state["recognizer"],
            config=_validated(RecognizerConfig, state["recognizer_config"], path, "recognizer_config"),
            charset=_stored_charset(state["charset"], path),
            details={key: value for key, value in state.items() if key not in _RECOGNIZER_KEYS},
        )

    @property
    def mlflow_run_id(self) -> str | None:
        """The training run, when this recognizer is read from a GAN checkpoint."""
        return self.details.get("mlflow_run_id")


_REFERENCE_FILE_KEYS = ("charset", "format_version")
"""Keys of a reference-recognizers file that are not a recognizer's name."""


@dataclass(frozen=True)
class ReferenceRecognizers:
    """The recognizers a run trains beside the in-loop one (the judge, the ``degraded_trained`` baseline), by
    name: what the ``train_reference_recognizers`` node saves. None of them is seen by a GAN loss."""

    charset: Charset
    recognizers: dict[str, RecognizerCheckpoint] = field(default_factory=dict)
    """Empty when ``training.judge`` is null and no baseline is configured."""

    def to_state(self) -> dict[str, Any]:
        held = {name: checkpoint.to_state() for name, checkpoint in self.recognizers.items()}
        return {"charset": self.charset.to_dict(), **held}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], path: Path | str) -> ReferenceRecognizers:
        _require(state, ("charset",), "reference-recognizers checkpoint", path)
        return cls(
            charset=_stored_charset(state["charset"], path),
            recognizers={
                name: RecognizerCheckpoint.from_state(held, f"{path} ({name})")
                for name, held in state.items()
                if name not in _REFERENCE_FILE_KEYS
            },
        )


@dataclass(frozen=True)
class GanRunMetadata:
    """What a GAN run stores beside its training state: enough to rebuild and judge its models anywhere."""

    charset: Charset
    config: TrainedRunConfig
    generator_config: GeneratorConfig
    discriminator_config: DiscriminatorConfig
    recognizer_config: RecognizerConfig
    reference_recognizers: dict[str, RecognizerCheckpoint] = field(default_factory=dict)
    """The run's judge and baselines by name; none of them is seen by a GAN loss. Empty in checkpoints made
    before the judge existed."""
    config_as_stored: dict[str, Any] = field(default_factory=dict)
    """``config`` exactly as the file holds it (filled from ``config`` when not read from a file). The config
    audit compares this with the params the run logged: keys the schema gained since the run are defaults in
    ``config``, and were never logged."""

    def __post_init__(self) -> None:
        if not self.config_as_stored:
            object.__setattr__(self, "config_as_stored", self.config.model_dump(mode="json"))

    def to_state(self) -> dict[str, Any]:
        return {
            "charset": self.charset.to_dict(),
            "config": self.config_as_stored,
            "generator_config": self.generator_config.model_dump(mode="json"),
            "discriminator_config": self.discriminator_config.model_dump(mode="json"),
            "recognizer_config": self.recognizer_config.model_dump(mode="json"),
            "reference_recognizers": {name: held.to_state() for name, held in self.reference_recognizers.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], path: Path | str) -> GanRunMetadata:
        _require(state, _RUN_METADATA_KEYS, "GAN checkpoint with run metadata", path)
        stored = {key: state[key] for key in _StoredSettings.model_fields}
        if state.get("format_version", FORMAT_VERSION) == 1:
            stored = _settings_of_format_1(stored)
        settings = _validated(_StoredSettings, stored, path)
        return cls(
            charset=_stored_charset(state["charset"], path),
            config=settings.config,
            generator_config=settings.generator_config,
            discriminator_config=settings.discriminator_config,
            recognizer_config=settings.recognizer_config,
            reference_recognizers={
                name: RecognizerCheckpoint.from_state(held, f"{path} ({name})")
                for name, held in state.get("reference_recognizers", {}).items()
            },
            config_as_stored=dict(state["config"]),
        )


_RUN_METADATA_KEYS = ("charset", "config", "generator_config", "discriminator_config", "recognizer_config")


def _settings_of_format_1(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 file's settings, its generator's (in ``generator_config`` and in the run's config) as trained:
    see :func:`~htr_pipeline.config.trained_before_paper_levels`."""
    migrated = {**stored, "generator_config": trained_before_paper_levels(stored["generator_config"])}
    config = stored["config"]
    training = config.get("training") if isinstance(config, Mapping) else None
    if isinstance(training, Mapping) and isinstance(training.get("generator"), Mapping):
        generator = trained_before_paper_levels(training["generator"])
        migrated["config"] = {**config, "training": {**training, "generator": generator}}
    return migrated


@dataclass(frozen=True)
class GanCheckpoint:
    """A GAN training checkpoint (``last``, ``best``, ``best_<metric>``): the models and every piece of training
    state a resumed run needs, and the run's metadata (None only in checkpoints written without it)."""

    generator: StateDict
    discriminator: StateDict
    recognizer: StateDict
    generator_optimizer: dict[str, Any]
    discriminator_optimizer: dict[str, Any]
    recognizer_optimizer: dict[str, Any] | None
    """None unless the recognizer is fine-tuned during the GAN stage."""
    schedulers: list[dict[str, Any]]
    scaler: dict[str, Any]
    balancer: dict[str, Any]
    early_stopping: dict[str, Any] | None
    best_by_monitor: dict[str, Any]
    best_per_metric: dict[str, dict[str, Any]]
    generator_gradients: dict[str, Any]
    discriminator_gradients: dict[str, Any]
    rng: dict[str, Any]
    epoch: int
    step: int
    mlflow_run_id: str | None
    run: GanRunMetadata | None = None

    def to_state(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in _GAN_TRAINING_KEYS}
        return state if self.run is None else {**state, **self.run.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], path: Path | str) -> GanCheckpoint:
        _require(state, _GAN_TRAINING_KEYS, "GAN training checkpoint", path)
        has_metadata = all(key in state for key in _RUN_METADATA_KEYS)
        return cls(
            **{name: state[name] for name in _GAN_TRAINING_KEYS},
            run=GanRunMetadata.from_state(state, path) if has_metadata else None,
        )

    def run_metadata(self, path: Path | str) -> GanRunMetadata:
        """The run's metadata; an error naming the file when it was written without it."""
        if self.run is None:
            _require({}, _RUN_METADATA_KEYS, "GAN checkpoint with run metadata", path)
        return typing.cast(GanRunMetadata, self.run)

    def recognizer_checkpoint(self, path: Path | str) -> RecognizerCheckpoint:
        """The in-loop recognizer with its settings and charset (and this run's MLflow id)."""
        run = self.run_metadata(path)
        return RecognizerCheckpoint(
            weights=self.recognizer,
            config=run.recognizer_config,
            charset=run.charset,
            details={"mlflow_run_id": self.mlflow_run_id},
        )


_GAN_TRAINING_KEYS = tuple(item.name for item in dataclasses.fields(GanCheckpoint) if item.name != "run")

# ------------------------------------------------------------------------------------ restoring, strictly


def check_same_charset(stored_charset: Charset, charset: Charset, path: Path | str) -> None:
    """The charset a checkpoint was trained with is the one given here: same symbols in the same order."""
    if stored_charset.symbols != charset.symbols:
        only_stored = sorted(set(stored_charset.symbols) - set(charset.symbols))
        only_here = sorted(set(charset.symbols) - set(stored_charset.symbols))
        raise CheckpointError(
            f"{path} was trained with another charset ({len(stored_charset.symbols)} symbols vs "
            f"{len(charset.symbols)} here; only in the checkpoint: {only_stored[:20]}, only here: {only_here[:20]}, "
            "or a different order). Use the data it was trained on, or train anew."
        )


def restore_weights(module: nn.Module, weights: Mapping[str, torch.Tensor], what: str, path: Path) -> None:
    """Strict load: a missing, unexpected or mis-shaped tensor is an error, never a partial load.

    Keys and shapes are checked before anything is copied (``load_state_dict`` copies every tensor that fits
    before it raises), so a refused checkpoint leaves the module as it was.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mis_shaped = sorted(
        f"{name}: {tuple(weights[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    )
    if missing or unexpected or mis_shaped:
        raise CheckpointError(
            f"{path}: the {what} weights do not fit this model (missing: {missing[:10]}, unexpected: "
            f"{unexpected[:10]}, shapes checkpoint vs model: {mis_shaped[:10]}). Nothing was loaded."
        )
    module.load_state_dict(weights, strict=True)


def rng_states() -> dict[str, Any]:
    """The random generators' states: torch's CPU generator, Python's, and one state per CUDA device, when this
    process uses CUDA (reading them would otherwise start CUDA, in a CPU run too)."""
    states = {"torch": torch.get_rng_state(), "python": _python_state_as_lists(random.getstate())}
    if torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_states` saved. CUDA states go to the devices present (a run resumed on fewer GPUs
    restores the first ones) and only in a process that uses CUDA; what is left out is logged."""
    torch.set_rng_state(states["torch"])
    saved_cuda = list(states.get("cuda", []))
    if saved_cuda:
        present = torch.cuda.device_count() if torch.cuda.is_initialized() else 0
        for index, state in enumerate(saved_cuda[:present]):
            torch.cuda.set_rng_state(state, index)
        if present < len(saved_cuda):
            logger.info(
                "The checkpoint holds the random states of %d CUDA device(s); %d restored (this process uses %s).",
                len(saved_cuda),
                present,
                f"{present} GPU(s)" if present else "no GPU",
            )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def _python_state_as_lists(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]
