"""The two training stages assembled from data, config and a metric tracker: what the pipeline nodes call."""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch._dynamo

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    CHECKPOINT_NAMES,
    LAST,
    CheckpointError,
    GanCheckpoint,
    GanRunMetadata,
    RecognizerCheckpoint,
    ReferenceRecognizers,
    TrainedRunConfig,
    check_same_charset,
    checkpoint_epoch,
    checkpoint_file,
    copy_checkpoint,
    load_gan_checkpoint,
    load_recognizer_checkpoint,
    restore_weights,
)
from htr_pipeline.config import ConfigError, GeneratorConfig, RecognizerConfig, TrainingConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.metric_names import PAGE_MONITOR
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.models.vgg import VggFeatureExtractor
from htr_pipeline.project_paths import project_relative
from htr_pipeline.training.ctc_feasibility import check_feasibility, feasibility_report
from htr_pipeline.training.data_loading import line_loader
from htr_pipeline.training.distributed import SINGLE_PROCESS, DataParallelGroup, run_data_parallel
from htr_pipeline.training.gan_training import GanModels, GanTrainer, frozen_copy, train_gan
from htr_pipeline.training.recognizer_training import (
    DEGRADED_TRAINED_RECOGNIZER,
    JUDGE_RECOGNIZER,
    LineKind,
    check_recognizer_reads,
    pretrain_recognizer,
)
from htr_pipeline.training.runtime import DiscardingTracker, MetricTracker, configure_cuda, seed_everything
from htr_pipeline.training.validation import ValidationPages, score_lines

logger = logging.getLogger(__name__)

COMPILED_GRAPHS_PER_MODEL = 64
"""Enough for 2,048-px lines at 64-px width steps, in training and evaluation mode."""


@dataclass(frozen=True)
class LineSplits:
    train: pd.DataFrame
    valid: pd.DataFrame
    dropped_infeasible: list[str]
    pages_excluded: int
    """Page pairs left out (all of them without ``training.page_crops``)."""
    train_pages: pd.DataFrame
    """Page pairs cut into crops for the GAN (empty without ``training.page_crops``)."""
    valid_pages: pd.DataFrame


def line_splits(manifest: pd.DataFrame, config: TrainingConfig) -> LineSplits:
    """Train and valid lines after the CTC pre-flight; page pairs go to page crops when configured."""
    lines = manifest[(manifest["image_type"] == "line") & manifest["split"].isin(["train", "valid"])]
    report = feasibility_report(lines, config.recognizer.width_downsampling)
    dropped = check_feasibility(report, config.drop_infeasible)
    if dropped:
        logger.warning("Dropped %d infeasible samples (training.drop_infeasible): %s", len(dropped), dropped[:20])
    kept = lines[~lines["sample_id"].isin(dropped)]
    pages = manifest[(manifest["image_type"] == "page") & manifest["clean_path"].notna()]
    used_pages = pages[pages["split"].isin(["train", "valid"])] if config.page_crops is not None else pages.iloc[:0]
    return LineSplits(
        train=kept[kept["split"] == "train"],
        valid=kept[kept["split"] == "valid"],
        dropped_infeasible=dropped,
        pages_excluded=int((manifest["image_type"] == "page").sum()) - len(used_pages),
        train_pages=used_pages[used_pages["split"] == "train"],
        valid_pages=used_pages[used_pages["split"] == "valid"],
    )


# ------------------------------------------------------------------------------------------------ resuming


class RunFinishedError(CheckpointError):
    """``training.resume_from`` names a run that has no epoch left to train under the settings given (a
    ``CheckpointError``: told in one line)."""


def resumed_checkpoint(config: TrainingConfig) -> tuple[Path, GanCheckpoint]:
    """The checkpoint ``training.resume_from`` names (a file: the training node resolves a run id), checked to
    have epochs left to train; a finished run stops here, before any work, with what to pass to continue it."""
    path = Path(typing.cast(str, config.resume_from))
    checkpoint = load_gan_checkpoint(path, "training.resume_from")
    run = f" (MLflow run {checkpoint.mlflow_run_id})" if checkpoint.mlflow_run_id else ""
    continued = f'--params "training.resume_from={project_relative(path)},training.epochs={checkpoint.epoch + 5}"'
    if checkpoint.epoch >= config.epochs:
        raise RunFinishedError(
            f"training.resume_from: {path}{run} has trained {_epochs(checkpoint.epoch)}, training.epochs is "
            f"{config.epochs}: nothing left to resume. To train it further, raise training.epochs, e.g. {continued}"
        )
    if checkpoint.run is not None:
        _check_the_same_generator(checkpoint.run.generator_config, config.generator, f"{path}{run}")
    stopping = config.early_stopping
    if stopping is not None and checkpoint.early_stopping is not None:
        without_improvement = int(checkpoint.early_stopping["epochs_without_improvement"])
        if without_improvement >= stopping.patience:
            raise RunFinishedError(
                f"training.resume_from: {path}{run} stopped early at epoch {checkpoint.epoch} ({config.monitor} "
                f"did not improve for {_epochs(without_improvement)}, training.early_stopping.patience is "
                f"{stopping.patience}): nothing left to resume. To train it further, raise the patience "
                f"(training.early_stopping.patience={without_improvement + 5}) or set training.early_stopping=null"
            )
    return path, checkpoint


def _check_the_same_generator(trained: GeneratorConfig, configured: GeneratorConfig, checkpoint: str) -> None:
    """The resumed epochs train the generator the checkpoint holds: every generator setting (its variant, sizes,
    paper levels, normalisation) as it was trained, or one line naming each that differs and the value to set."""
    trained_settings, configured_settings = trained.model_dump(mode="json"), configured.model_dump(mode="json")
    differing = [key for key, value in trained_settings.items() if configured_settings.get(key, None) != value]
    if differing:
        was = " and ".join(f"{key} {_shown(trained_settings[key])}" for key in differing)
        now = " and ".join(f"training.generator.{key} is {_shown(configured_settings.get(key))}" for key in differing)
        fix = " and ".join(f"training.generator.{key} to {_shown(trained_settings[key])}" for key in differing)
        raise CheckpointError(
            f"training.resume_from: {checkpoint} trained its generator with {was}, {now}: the resumed epochs would "
            f"train another generator. Set {fix} to continue the run"
        )


def _shown(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _epochs(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def carry_best_checkpoints(source_folder: Path, run_folder: Path, resumed_epoch: int) -> list[str]:
    """Link the resumed run's best checkpoints (up to the epoch it resumes from) into this run's folder, so the
    folder holds every checkpoint the best-epoch trackers name (``restore_best_weights`` reads ``best.pt`` there;
    evaluation reads any); a later improvement replaces its file. Returns the names carried."""
    run_folder.mkdir(parents=True, exist_ok=True)
    carried = []
    for name in CHECKPOINT_NAMES:
        source = checkpoint_file(source_folder, name)
        # A crash between an epoch's best and last files leaves a best of the next epoch: not this history's.
        if name != LAST and source.is_file() and checkpoint_epoch(source) <= resumed_epoch:
            copy_checkpoint(source, checkpoint_file(run_folder, name))
            carried.append(name)
    return carried


# ------------------------------------------------------------------------------------------------ stage 1


def recognizer_stage(
    manifest: pd.DataFrame, store: LineImageStore, charset: Charset, config: TrainingConfig, tracker: MetricTracker
) -> RecognizerCheckpoint:
    """Pre-train the recognizer, or take it from ``training.resume_from`` or ``training.recognizer_checkpoint``
    (loaded strictly); return its checkpoint. A recognizer that does not read (best val CER above
    ``recognizer_pretraining.max_val_cer``) stops here, before any GAN epoch."""
    # Before any CUDA work of the run: cuBLAS reads its deterministic workspace setting once, when it starts.
    configure_cuda(resolve_device(config.device, "training.device"), config.speed, cudnn_benchmark=False)
    if config.resume_from is not None:
        path, resumed = resumed_checkpoint(config)
        in_loop = resumed.recognizer_checkpoint(path)
        taken = dataclasses.replace(in_loop, details={"taken_from": str(path)})
        logger.info("Stage 1 skipped: the in-loop recognizer is taken from %s (epoch %d).", path, resumed.epoch)
        load_recognizer(taken, charset, config.recognizer, path)
        return taken
    if config.recognizer_checkpoint is not None:
        path = Path(config.recognizer_checkpoint)
        loaded = load_recognizer_checkpoint(path, "training.recognizer_checkpoint")
        recognizer = load_recognizer(loaded, charset, config.recognizer, path)
        val_cer = loaded_recognizer_val_cer(recognizer, manifest, store, charset, config)
        tracker.log_metrics({"recognizer/val_cer": val_cer}, step=0)
        check_recognizer_reads(val_cer, config.recognizer_pretraining, f"The recognizer of {path}", None, None)
        return dataclasses.replace(loaded, details={**loaded.details, "best_val_cer": val_cer})
    trained = train_recognizer(manifest, store, charset, config, tracker, config.recognizer, config.seed)
    check_recognizer_reads(
        trained.details["best_val_cer"],
        config.recognizer_pretraining,
        "The pre-trained recognizer (stage 1)",
        trained.details["epochs_run"],
        trained.details["steps_run"],
    )
    return trained


def reference_recognizers_stage(
    manifest: pd.DataFrame, store: LineImageStore, charset: Charset, config: TrainingConfig, tracker: MetricTracker
) -> ReferenceRecognizers:
    """The recognizers that evaluation reads with beside the in-loop one: the judge (clean train lines, its own
    seed and architecture) and the configured baselines (``degraded_trained``). None of them is seen by a GAN
    loss. A judge that does not read stops the run like stage 1 does. A resumed run takes the ones its checkpoint
    holds (nothing is trained again)."""
    if config.resume_from is not None:
        path, resumed = resumed_checkpoint(config)
        run = resumed.run_metadata(path)
        check_same_charset(run.charset, charset, path)
        logger.info("Reference recognizers taken from %s: %s.", path, ", ".join(run.reference_recognizers) or "none")
        return ReferenceRecognizers(charset, dict(run.reference_recognizers))
    recognizers: dict[str, RecognizerCheckpoint] = {}
    if config.judge is not None:
        judge = train_recognizer(
            manifest, store, charset, config, tracker, config.judge.recognizer, config.judge.seed, JUDGE_RECOGNIZER
        )
        check_recognizer_reads(
            judge.details["best_val_cer"],
            config.recognizer_pretraining,
            "The judge recognizer (training.judge)",
            judge.details["epochs_run"],
            judge.details["steps_run"],
        )
        recognizers[JUDGE_RECOGNIZER] = judge
    if DEGRADED_TRAINED_RECOGNIZER in config.baselines:
        recognizers[DEGRADED_TRAINED_RECOGNIZER] = train_recognizer(
            manifest,
            store,
            charset,
            config,
            tracker,
            config.recognizer,
            config.seed,
            DEGRADED_TRAINED_RECOGNIZER,
            "degraded",
        )
    return ReferenceRecognizers(charset, recognizers)


def train_recognizer(
    manifest: pd.DataFrame,
    store: LineImageStore,
    charset: Charset,
    config: TrainingConfig,
    tracker: MetricTracker,
    recognizer_config: RecognizerConfig,
    seed: int,
    metric_prefix: str = "recognizer",
    lines: LineKind = "clean",
) -> RecognizerCheckpoint:
    """A recognizer of ``recognizer_config`` trained from ``seed`` on ``lines`` of the train split; its
    checkpoint, with the training figures in its details."""
    device = resolve_device(config.device, "training.device")
    configure_cuda(device, config.speed, cudnn_benchmark=False)
    seed_everything(seed)
    splits = line_splits(manifest, config)
    recognizer = build_recognizer(recognizer_config, charset.num_classes).to(device)
    batch_size = config.recognizer_pretraining.batch_size
    result = pretrain_recognizer(
        recognizer,
        line_loader(splits.train, store, charset, config, batch_size, training=True, device=device),
        line_loader(splits.valid, store, charset, config, batch_size, training=False, device=device),
        charset,
        config,
        device,
        tracker,
        seed=seed,
        metric_prefix=metric_prefix,
        lines=lines,
    )
    return RecognizerCheckpoint(
        weights={name: tensor.cpu() for name, tensor in recognizer.state_dict().items()},
        config=recognizer_config,
        charset=charset,
        details={"seed": seed, "trained_on": lines, **asdict(result)},
    )


def loaded_recognizer_val_cer(
    recognizer: torch.nn.Module, manifest: pd.DataFrame, store: LineImageStore, charset: Charset, config: TrainingConfig
) -> float:
    """The val CER of a loaded recognizer on the clean valid lines (what the gate compares)."""
    device = resolve_device(config.device, "training.device")
    splits = line_splits(manifest, config)
    batch_size = config.recognizer_pretraining.batch_size
    loader = line_loader(splits.valid, store, charset, config, batch_size, training=False, device=device)
    recognizer.to(device).eval()
    return score_lines(
        loader, recognizer, charset, device, config.precision, config.combined_cer_weight, read_clean=True
    ).cer


def load_recognizer(
    checkpoint: RecognizerCheckpoint, charset: Charset, recognizer_config: RecognizerConfig, path: Path
) -> torch.nn.Module:
    """A recognizer from its checkpoint: same charset, same architecture settings, strict weights."""
    check_same_charset(checkpoint.charset, charset, path)
    if checkpoint.config != recognizer_config:
        raise CheckpointError(
            f"{path}: recognizer settings {checkpoint.config.model_dump(mode='json')} differ from training.recognizer "
            f"{recognizer_config.model_dump(mode='json')}; set training.recognizer to the checkpoint's settings."
        )
    recognizer = build_recognizer(recognizer_config, charset.num_classes)
    restore_weights(recognizer, checkpoint.weights, "recognizer", path)
    return recognizer


# ------------------------------------------------------------------------------------------------ stage 2


def perceptual_feature_extractor(
    config: TrainingConfig, recognizer: torch.nn.Module, device: torch.device
) -> Callable[[torch.Tensor], list[torch.Tensor]] | None:
    """The frozen perceptual extractor: VGG from a local file, or the pre-trained recognizer's conv trunk.

    With a frozen recognizer its readings already hold the trunk features (``None``: nothing to add); a
    fine-tuned recognizer keeps a frozen copy of its pre-trained trunk.
    """
    settings = config.losses.perceptual
    if settings.extractor != "recognizer":
        return VggFeatureExtractor(settings.extractor, settings.weights_path).to(device)
    if config.recognizer_during_gan == "frozen":
        return None
    return frozen_copy(recognizer).to(device).trunk_features


def build_gan_models(
    recognizer_checkpoint: RecognizerCheckpoint, charset: Charset, config: TrainingConfig, device: torch.device
) -> GanModels:
    """Fresh generator and discriminator, the pre-trained recognizer (strictly loaded; frozen unless fine-tuned)."""
    path = Path("recognizer_checkpoint")
    recognizer = load_recognizer(recognizer_checkpoint, charset, config.recognizer, path).to(device)
    if config.recognizer_during_gan == "frozen":
        recognizer.requires_grad_(False)
    generator = build_generator(config.generator).to(device)
    discriminator = build_discriminator(config.discriminator, charset.num_classes).to(device)
    if config.speed.compile:
        # One compiled graph per padded width and mode (train, eval): allow them all before falling back to eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, COMPILED_GRAPHS_PER_MODEL)
    for model in (generator, discriminator):
        if config.speed.channels_last:
            model.to(memory_format=torch.channels_last)
        if config.speed.compile:
            # In place: the state dict keeps its keys, so checkpoints stay loadable anywhere. Static shapes: the
            # widths repeat (see COMPILED_WIDTH_STEP_PX).
            model.compile(dynamic=False)
    return GanModels(
        generator=generator,
        discriminator=discriminator,
        recognizer=recognizer,
        feature_extractor=perceptual_feature_extractor(config, recognizer, device),
    )


def gan_run_metadata(
    charset: Charset, config: TrainedRunConfig, reference_recognizers: ReferenceRecognizers
) -> GanRunMetadata:
    """What every GAN checkpoint of this run stores beside its training state: the charset, the ``data`` and
    ``training`` sections as run, the model settings, and the run's reference recognizers (evaluation reads
    any checkpoint with the judge of its own run; no loss sees it)."""
    return GanRunMetadata(
        charset=charset,
        config=config,
        generator_config=config.training.generator,
        discriminator_config=config.training.discriminator,
        recognizer_config=config.training.recognizer,
        reference_recognizers=dict(reference_recognizers.recognizers),
    )


@dataclass(frozen=True)
class GanStageInputs:
    """Everything the GAN stage needs, picklable, so spawned data-parallel workers get it whole."""

    manifest: pd.DataFrame
    store: LineImageStore
    charset: Charset
    recognizer_checkpoint: RecognizerCheckpoint
    config: TrainingConfig
    run_folder: Path
    run_metadata: GanRunMetadata
    tracker_for_run: Callable[[str], MetricTracker]
    current_run_id: str
    validation_pages: ValidationPages | None = None


def gan_stage(
    manifest: pd.DataFrame,
    store: LineImageStore,
    charset: Charset,
    recognizer_checkpoint: RecognizerCheckpoint,
    config: TrainingConfig,
    run_folder: Path,
    run_metadata: GanRunMetadata,
    tracker_for_run: Callable[[str], MetricTracker],
    current_run_id: str,
    validation_pages: ValidationPages | None = None,
) -> dict[str, Any]:
    """Train the GAN, or resume ``training.resume_from`` (logging into the MLflow run it continues).

    With ``training.devices`` > 1 the stage runs in that many data-parallel processes and returns rank 0's
    summary (``tracker_for_run`` must then be picklable). Returns a summary naming the checkpoint folder, the
    best epoch and value of each metric, the final metrics, and what the pre-flight dropped or excluded.
    """
    inputs = GanStageInputs(
        manifest,
        store,
        charset,
        recognizer_checkpoint,
        config,
        run_folder,
        run_metadata,
        tracker_for_run,
        current_run_id,
        validation_pages,
    )
    device = resolve_device(config.device, "training.device")
    if config.devices > 1:
        return run_data_parallel(train_gan_in_group, inputs, config.devices, device.type)
    return train_gan_in_group(SINGLE_PROCESS, device, inputs)


def train_gan_in_group(group: DataParallelGroup, device: torch.device, inputs: GanStageInputs) -> dict[str, Any]:
    """The GAN stage in one process of ``group`` (all of it in a one-process run)."""
    config = inputs.config
    if config.gan_seed is not None:
        # The GAN stage draws its weights, line order and page crops from its own seed; stage 1 kept ``seed``.
        config = config.model_copy(update={"seed": config.gan_seed})
    seed_everything(config.seed)
    configure_cuda(device, config.speed, cudnn_benchmark=config.speed.cudnn_benchmark)
    splits = line_splits(inputs.manifest, config)
    models = build_gan_models(inputs.recognizer_checkpoint, inputs.charset, config, device)
    loader_for = partial(line_loader, store=inputs.store, charset=inputs.charset, config=config, device=device)
    train_loader = loader_for(
        splits.train, batch_size=config.batch_size, training=True, pages=splits.train_pages, group=group
    )
    val_loader = loader_for(splits.valid, batch_size=config.batch_size, training=False, pages=splits.valid_pages)
    pages = inputs.validation_pages
    if config.monitor == PAGE_MONITOR and pages is None:
        raise ConfigError(
            f"training.monitor: {PAGE_MONITOR} needs real page pairs in the valid split, and no valid line was "
            "composed on the paper of a data.real_paper page_pairs page; add such pages, or monitor val/combined"
        )
    trainer = GanTrainer(models, inputs.charset, config, device, group, pages)
    trainer.mlflow_run_id = inputs.current_run_id
    if config.resume_from is not None:
        path, resumed = resumed_checkpoint(config)
        check_same_charset(resumed.run_metadata(path).charset, inputs.charset, path)
        trainer.restore(resumed, path)
        if group.is_main:
            carried = carry_best_checkpoints(path.parent, inputs.run_folder, resumed.epoch)
            logger.info(
                "Resuming %s at epoch %d of %d, into %s (carried over: %s).",
                path,
                resumed.epoch + 1,
                config.epochs,
                inputs.run_folder,
                ", ".join(carried) or "nothing",
            )
    tracker = inputs.tracker_for_run(trainer.mlflow_run_id) if group.is_main else DiscardingTracker()
    if config.resume_from is None and group.is_main:
        tracker.log_metrics(trainer.validate(val_loader, restored=False).as_logged("val_degraded"), step=0)
    outcome = train_gan(trainer, train_loader, val_loader, inputs.run_folder, inputs.run_metadata, tracker)
    return {
        **asdict(outcome),
        "mlflow_run_id": trainer.mlflow_run_id,
        "dropped_infeasible": splits.dropped_infeasible,
        "pages_excluded": splits.pages_excluded,
        "train_page_crops": len(splits.train_pages) * (config.page_crops.crops_per_page if config.page_crops else 0),
        "train_lines": len(splits.train),
        "valid_lines": len(splits.valid),
        "validation_pages": list(pages.names) if pages is not None else [],
        "validation_pages_f_measure_scans": pages.scans_f_measure if pages is not None else None,
        "devices": group.world_size,
    }
