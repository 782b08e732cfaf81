"""Stage 2: the restoration GAN trained with the recognizer in the loop. Read top to bottom.

Per step: the generator restores the degraded line; the discriminator learns real (clean) from fake
(restored); the generator learns from pixel L1, the adversarial term, the CTC of the recognizer reading the
restored line (through the recognizer's input gradient, also when the recognizer is frozen), the distance
between recognizer features of restored and clean lines, and a perceptual distance. Per epoch: the loss
balancer updates its weights, validation scores the restored lines against the clean image and the
ground-truth text, checkpoints and early stopping follow the monitor.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    BEST,
    LAST,
    CheckpointName,
    GanCheckpoint,
    GanRunMetadata,
    best_of_metric,
    checkpoint_file,
    copy_checkpoint,
    load_gan_checkpoint,
    restore_rng_states,
    restore_weights,
    rng_states,
    save_gan_checkpoint,
)
from htr_pipeline.config import DualModalDiscriminatorConfig, TrainingConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.metric_names import MONITOR_MODES, PAGE_MONITOR
from htr_pipeline.models.freezing import frozen_for_input_gradients, parameters_frozen
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.precision import autocast
from htr_pipeline.progress import tqdm
from htr_pipeline.training import losses
from htr_pipeline.training.balancing import build_balancer
from htr_pipeline.training.distributed import SINGLE_PROCESS, DataParallelGroup
from htr_pipeline.training.early_stopping import BestMetricTracker, EarlyStopping
from htr_pipeline.training.grad_stats import GradientNorms, GradientStatistics
from htr_pipeline.training.runtime import MetricTracker, adam, grad_scaler, load_optimizer_state
from htr_pipeline.training.validation import ValidationMetrics, ValidationPages, score_lines

logger = logging.getLogger(__name__)

PROGRESS_REFRESH_STEPS = 10
"""The progress bar shows running losses every this many steps (reading them waits for the device)."""
BEST_PER_METRIC: tuple[str, ...] = tuple(MONITOR_MODES)
"""Each keeps its best epoch in its own checkpoint (:func:`htr_pipeline.checkpoints.best_of_metric`)."""


@dataclass
class GanModels:
    generator: nn.Module
    discriminator: nn.Module
    recognizer: nn.Module
    feature_extractor: Callable[[torch.Tensor], list[torch.Tensor]] | None
    """Frozen perceptual feature extractor (VGG, or a frozen copy of the recognizer's conv trunk when the
    recognizer is fine-tuned); ``None``: the frozen recognizer's own trunk features, already computed."""


@dataclass
class EpochSums:
    """Running sums of one epoch, kept on the device: nothing waits for the GPU inside a step."""

    values: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0

    def add(self, **terms: torch.Tensor) -> None:
        for name, value in terms.items():
            detached = value.detach().float()
            self.values[name] = self.values[name] + detached if name in self.values else detached
        self.steps += 1

    def means(self, names: tuple[str, ...] | None = None) -> dict[str, float]:
        """Epoch means so far (one host transfer per value: call at epoch end, or now and then)."""
        chosen = self.values if names is None else {name: self.values[name] for name in names}
        return {name: float(total) / max(self.steps, 1) for name, total in chosen.items()}


class GanTrainer:
    """Owns the models, optimisers and every piece of training state that a checkpoint must hold."""

    def __init__(
        self,
        models: GanModels,
        charset: Charset,
        config: TrainingConfig,
        device: torch.device,
        group: DataParallelGroup = SINGLE_PROCESS,
        validation_pages: ValidationPages | None = None,
    ):
        self.models = models
        self.validation_pages = validation_pages
        """Real pages every validation restores and scores (``val/page_f_measure``); None: lines only."""
        self.charset = charset
        self.config = config
        self.device = device
        self.group = group
        # What the training step calls: the models themselves, or wrappers that average gradients over processes.
        self.training_generator = group.wrap(models.generator, device)
        self.training_discriminator = group.wrap(models.discriminator, device)
        optimizer = config.optimizer
        self.generator_optimizer = adam(
            models.generator.parameters(), device, lr=optimizer.lr_generator, betas=optimizer.betas
        )
        self.discriminator_optimizer = adam(
            models.discriminator.parameters(), device, lr=optimizer.lr_discriminator, betas=optimizer.betas
        )
        self.recognizer_optimizer = (
            adam(models.recognizer.parameters(), device, lr=config.recognizer_pretraining.learning_rate)
            if config.recognizer_during_gan == "fine_tune"
            else None
        )
        self.schedulers = (
            [
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
                for opt in (self.generator_optimizer, self.discriminator_optimizer)
            ]
            if optimizer.cosine_schedule
            else []
        )
        self.scaler = grad_scaler(device, config.precision)
        self.balancer = build_balancer(config.adaptive_balancing)
        monitor_mode = MONITOR_MODES[config.monitor]
        stopping = config.early_stopping
        self.early_stopping = (
            EarlyStopping(mode=monitor_mode, patience=stopping.patience, min_delta=stopping.min_delta)
            if stopping is not None
            else None
        )
        self.best_by_monitor = BestMetricTracker(config.monitor, mode=monitor_mode)
        self.best_per_metric = {
            metric: BestMetricTracker(metric, mode=MONITOR_MODES[metric])
            for metric in BEST_PER_METRIC
            if metric != PAGE_MONITOR or self.validation_pages is not None
        }
        self.generator_gradients = GradientStatistics(spike_factor=config.gradient_spike_factor)
        self.discriminator_gradients = GradientStatistics(spike_factor=config.gradient_spike_factor)
        self.epoch = 0
        self.step = 0
        self.mlflow_run_id: str | None = None
        self.gradient_report: dict[str, Any] = {}
        """The last epoch's gradient summary: top layers by norm and every spike with its layer."""

    # ---------------------------------------------------------------------------------------------- a step

    def train_step(self, batch: LineBatch, ctc_factor: float, sums: EpochSums) -> None:
        models, config, weights = self.models, self.config, self.config.losses.weights
        generator, discriminator, recognizer = models.generator, models.discriminator, models.recognizer
        with autocast(self.device, config.precision):
            restored = self.training_generator(batch.degraded)
        # restored: (batch, 1, height, padded_width) in [0, 1]
        column_mask = _column_mask(batch.widths, restored.shape[-1])

        # The recognizer reads the restored lines once: the generator learns from that reading (CTC, features),
        # and a dual-modal discriminator in ``predicted`` mode sees its greedy text.
        with self._recognizer_in_loop(), autocast(self.device, config.precision):
            reading_restored = recognizer(restored)
            with torch.no_grad():
                reading_clean = recognizer(batch.clean)
        text_labels, text_lengths = self._discriminator_text(reading_restored.logits.detach(), batch)

        # The discriminator: real clean lines against the generator's current output.
        with autocast(self.device, config.precision):
            real_logits = self._discriminate(
                self.training_discriminator, batch.degraded, batch.clean, text_labels, text_lengths
            )
            fake_logits = self._discriminate(
                self.training_discriminator, batch.degraded, restored.detach(), text_labels, text_lengths
            )
            discriminator_loss = losses.discriminator_loss(
                real_logits.float(), fake_logits.float(), config.losses.adversarial_kind, config.losses.label_smoothing
            )
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(discriminator_loss).backward()
        self._clip_and_record(discriminator, self.discriminator_optimizer, self.discriminator_gradients)
        self.scaler.step(self.discriminator_optimizer)

        # The generator: visual terms plus the recognizer's CTC on its output. The adversarial term passes through
        # the discriminator itself, frozen: no discriminator gradient is computed, nor averaged over processes.
        with autocast(self.device, config.precision), parameters_frozen(discriminator):
            adversarial = losses.generator_adversarial_loss(
                self._discriminate(discriminator, batch.degraded, restored, text_labels, text_lengths).float(),
                config.losses.adversarial_kind,
            )
        with autocast(self.device, config.precision):
            pixel = losses.pixel_l1(restored.float(), batch.clean, column_mask)
            time_steps = ctc_time_steps(batch.widths, recognizer.width_downsampling)
            time_indices = torch.arange(reading_restored.logits.shape[1], device=self.device)
            time_mask = time_indices[None, :] < time_steps[:, None]
            recognition_feature = losses.recognition_feature_loss(
                reading_restored.features.float(), reading_clean.features.float(), time_mask
            )
            perceptual = losses.perceptual_loss(
                *self._perceptual_features(restored, batch.clean, reading_restored, reading_clean)
            )
        # The CTC's lengths are the host copies: reading them back from the device would wait for it.
        host_time_steps = ctc_time_steps(batch.host_widths, recognizer.width_downsampling)
        ctc = losses.ctc_loss_per_sample(
            reading_restored.logits,
            batch.labels,
            host_time_steps,
            batch.host_label_lengths,
            blank=self.charset.blank_index,
        )
        has_text = batch.label_lengths > 0
        ctc_capped, ctc_ceiling_hits = losses.apply_ctc_ceiling(ctc.per_sample, config.losses.ctc_ceiling)
        ctc_raw = _masked_mean(ctc.per_sample, has_text)
        ctc_used = _masked_mean(ctc_capped, has_text)
        visual = (
            weights.pixel * pixel
            + weights.adversarial * adversarial
            + weights.recognition_feature * recognition_feature
            + weights.perceptual * perceptual
        )
        ctc_term = weights.ctc * ctc_factor * ctc_used
        visual_multiplier, ctc_multiplier = self.balancer.weight_visual, self.balancer.weight_ctc
        generator_loss = visual_multiplier * visual + ctc_multiplier * ctc_term
        self.generator_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(generator_loss).backward()
        self._clip_and_record(generator, self.generator_optimizer, self.generator_gradients)
        self.scaler.step(self.generator_optimizer)

        if self.recognizer_optimizer is not None:
            self._fine_tune_recognizer(batch, host_time_steps)
        self.scaler.update()
        self.step += 1
        sums.add(
            g_loss=generator_loss,
            d_loss=discriminator_loss,
            pixel_loss=pixel,
            adv_loss=adversarial,
            ctc_loss=ctc_used,
            ctc_loss_raw=ctc_raw,
            rec_feat_loss=recognition_feature,
            perceptual_loss=perceptual,
            visual_weighted=visual,
            ctc_weighted=ctc_term,
            # Each term as it enters the generator loss: config weight x balancer multiplier (x CTC schedule).
            pixel_loss_weighted=visual_multiplier * weights.pixel * pixel,
            adv_loss_weighted=visual_multiplier * weights.adversarial * adversarial,
            rec_feat_loss_weighted=visual_multiplier * weights.recognition_feature * recognition_feature,
            perceptual_loss_weighted=visual_multiplier * weights.perceptual * perceptual,
            ctc_loss_weighted=ctc_multiplier * ctc_term,
            ctc_infinite_samples=ctc.infinite_count,
            ctc_ceiling_hits=ctc_ceiling_hits,
        )

    def _perceptual_features(
        self, restored: torch.Tensor, clean: torch.Tensor, reading_restored: Any, reading_clean: Any
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        extractor = self.models.feature_extractor
        if extractor is None:
            return [f.float() for f in reading_restored.trunk], [f.float() for f in reading_clean.trunk]
        with torch.no_grad():
            clean_features = [f.float() for f in extractor(clean)]
        return [f.float() for f in extractor(restored)], clean_features

    def _recognizer_in_loop(self) -> contextlib.AbstractContextManager:
        """How the recognizer reads the restored lines: frozen in every sense yet differentiable on cuDNN; or, when
        fine-tuned, as it trains, with no weight gradient from the generator's loss (its own step makes those)."""
        if self.recognizer_optimizer is None:
            return frozen_for_input_gradients(self.models.recognizer)
        return parameters_frozen(self.models.recognizer)

    def _discriminator_text(self, logits: torch.Tensor, batch: LineBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The symbol sequence a dual-modal discriminator sees: the recognizer's greedy reading of the restored
        lines (``logits``), or the ground truth."""
        # logits: (batch, time_steps, num_classes) of the restored lines, detached
        discriminator_config = self.config.discriminator
        if not isinstance(discriminator_config, DualModalDiscriminatorConfig):
            return batch.labels, batch.label_lengths
        if discriminator_config.mode == "ground_truth":
            return batch.labels, batch.label_lengths
        time_steps = ctc_time_steps(batch.widths, self.models.recognizer.width_downsampling)
        return self.charset.greedy_labels(logits.argmax(dim=-1), time_steps)

    def _discriminate(
        self,
        discriminator: nn.Module,
        degraded: torch.Tensor,
        candidate: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        if isinstance(self.config.discriminator, DualModalDiscriminatorConfig):
            return discriminator(degraded, candidate, labels, lengths)
        return discriminator(degraded, candidate)

    def _clip_and_record(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, statistics: GradientStatistics
    ) -> None:
        """Unscale, measure every layer's gradient norm (before clipping), then clip the global norm, which is
        computed from the same per-parameter norms, exactly as ``clip_grad_norm_`` computes it."""
        self.scaler.unscale_(optimizer)
        norms = GradientNorms.of(model)
        statistics.record(norms.layer_norms)
        if self.config.optimizer.gradient_clip_norm is not None:
            clip_with_norm(model, self.config.optimizer.gradient_clip_norm, norms.total_norm())

    def _fine_tune_recognizer(self, batch: LineBatch, time_steps: torch.Tensor) -> None:
        # time_steps: (batch,) int64 CTC input lengths, on the CPU
        recognizer = self.models.recognizer
        with autocast(self.device, self.config.precision):
            logits = recognizer(batch.clean).logits
        ctc = losses.ctc_loss_per_sample(
            logits, batch.labels, time_steps, batch.host_label_lengths, blank=self.charset.blank_index
        )
        loss = _masked_mean(ctc.per_sample, batch.label_lengths > 0)
        self.recognizer_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.recognizer_optimizer)

    # --------------------------------------------------------------------------------------------- an epoch

    def train_epoch(self, loader: DataLoader) -> dict[str, float]:
        self.epoch += 1
        loader.batch_sampler.set_epoch(self.epoch)
        self.models.generator.train()
        self.models.discriminator.train()
        self.models.recognizer.train(self.recognizer_optimizer is not None)
        self.generator_gradients.reset_epoch()
        self.discriminator_gradients.reset_epoch()
        ctc_factor = losses.ctc_schedule_factor(self.epoch, self.config.losses.ctc_schedule)
        sums = EpochSums()
        started = time.perf_counter()
        progress = tqdm(loader, desc=f"GAN epoch {self.epoch}/{self.config.epochs}", unit="batch", leave=False)
        samples = 0
        # In a data-parallel run the loader gives each process its own share of every batch (ProcessShare).
        for batch in progress:
            self.train_step(batch.to(self.device), ctc_factor, sums)
            samples += len(batch.sample_ids)
            if sums.steps % PROGRESS_REFRESH_STEPS == 0:
                progress.set_postfix(sums.means(("g_loss", "d_loss", "pixel_loss", "ctc_loss")))
        for scheduler in self.schedulers:
            scheduler.step()
        samples = self.group.total(samples, self.device)
        sums.values = self.group.average(sums.values)  # every process balances the losses with the same means
        means = sums.means()
        update = self.balancer.update(mean_visual=means["visual_weighted"], mean_ctc=means["ctc_weighted"])
        generator_summary = self.generator_gradients.summarise()
        discriminator_summary = self.discriminator_gradients.summarise()
        self.gradient_report = {
            "epoch": self.epoch,
            "generator": dataclasses.asdict(generator_summary),
            "discriminator": dataclasses.asdict(discriminator_summary),
        }
        epoch_seconds = time.perf_counter() - started
        progress.close()
        return {
            **{f"train/{name}": means[name] for name in _LOGGED_TRAIN_TERMS},
            "train/ctc_infinite_samples": means["ctc_infinite_samples"] * sums.steps,
            "train/ctc_ceiling_hits": means["ctc_ceiling_hits"] * sums.steps,
            "train/ctc_schedule_factor": ctc_factor,
            "train/g_grad_norm_mean": generator_summary.mean_global_norm,
            "train/g_grad_norm_max": generator_summary.max_global_norm,
            "train/g_grad_spike_steps": float(generator_summary.spike_steps),
            "train/d_grad_norm_mean": discriminator_summary.mean_global_norm,
            "train/d_grad_norm_max": discriminator_summary.max_global_norm,
            "train/d_grad_spike_steps": float(discriminator_summary.spike_steps),
            # Without adaptive balancing both multipliers stay 1.0: two flat curves MLflow would open on.
            **(
                {"adaptive/weight_ctc": update.weight_ctc, "adaptive/weight_visual": update.weight_visual}
                if self.config.adaptive_balancing is not None
                else {}
            ),
            "epoch_seconds": epoch_seconds,
            "samples_per_second": samples / epoch_seconds,
        }

    def validate(self, loader: DataLoader, restored: bool = True) -> ValidationMetrics:
        """Scores of the restored lines, and of the restored real pages where there are some; ``restored=False``
        scores the degraded input itself, the baseline."""
        self.models.generator.eval()
        self.models.recognizer.eval()
        lines = self._score_lines(loader, restored)
        if self.validation_pages is None:
            return lines
        pages = self.validation_pages
        page_f_measure = pages.score(self.models.generator) if restored else pages.scans_f_measure
        return dataclasses.replace(lines, page_f_measure=page_f_measure)

    def _score_lines(self, loader: DataLoader, restored: bool) -> ValidationMetrics:
        return score_lines(
            loader,
            self.models.recognizer,
            self.charset,
            self.device,
            self.config.precision,
            self.config.combined_cer_weight,
            restore=self.models.generator if restored else None,
        )

    # ----------------------------------------------------------------------------------------- checkpoints

    def checkpoint(self, run: GanRunMetadata | None) -> GanCheckpoint:
        """Everything a resumed run needs, with the run's metadata."""
        return GanCheckpoint(
            generator=self.models.generator.state_dict(),
            discriminator=self.models.discriminator.state_dict(),
            recognizer=self.models.recognizer.state_dict(),
            generator_optimizer=self.generator_optimizer.state_dict(),
            discriminator_optimizer=self.discriminator_optimizer.state_dict(),
            recognizer_optimizer=self.recognizer_optimizer.state_dict() if self.recognizer_optimizer else None,
            schedulers=[scheduler.state_dict() for scheduler in self.schedulers],
            scaler=self.scaler.state_dict(),
            balancer=self.balancer.state_dict(),
            early_stopping=self.early_stopping.state_dict() if self.early_stopping else None,
            best_by_monitor=self.best_by_monitor.state_dict(),
            best_per_metric={metric: tracker.state_dict() for metric, tracker in self.best_per_metric.items()},
            generator_gradients=self.generator_gradients.state_dict(),
            discriminator_gradients=self.discriminator_gradients.state_dict(),
            rng=rng_states(),
            epoch=self.epoch,
            step=self.step,
            mlflow_run_id=self.mlflow_run_id,
            run=run,
        )

    def restore(self, checkpoint: GanCheckpoint, path: Path) -> None:
        """Restore everything a checkpoint holds (strictly); the next epoch continues as if never stopped."""
        self.restore_models(checkpoint, path)
        load_optimizer_state(self.generator_optimizer, checkpoint.generator_optimizer)
        load_optimizer_state(self.discriminator_optimizer, checkpoint.discriminator_optimizer)
        if self.recognizer_optimizer is not None:
            load_optimizer_state(self.recognizer_optimizer, checkpoint.recognizer_optimizer)
        for scheduler, scheduler_state in zip(self.schedulers, checkpoint.schedulers, strict=True):
            scheduler.load_state_dict(scheduler_state)
        self._restore_scaler(checkpoint, path)
        self.balancer.load_state_dict(checkpoint.balancer)
        if self.early_stopping is not None:
            self.early_stopping.load_state_dict(checkpoint.early_stopping)
        self.best_by_monitor.load_state_dict(checkpoint.best_by_monitor)
        for metric, tracker in self.best_per_metric.items():
            if metric in checkpoint.best_per_metric:  # a checkpoint from before val/page_f_measure has no tracker
                tracker.load_state_dict(checkpoint.best_per_metric[metric])
        self.generator_gradients.load_state_dict(checkpoint.generator_gradients)
        self.discriminator_gradients.load_state_dict(checkpoint.discriminator_gradients)
        restore_rng_states(checkpoint.rng)
        self.epoch, self.step = int(checkpoint.epoch), int(checkpoint.step)
        self.mlflow_run_id = checkpoint.mlflow_run_id

    def _restore_scaler(self, checkpoint: GanCheckpoint, path: Path) -> None:
        """The fp16 loss scale a checkpoint saved; a run that changed ``training.precision`` says what it did."""
        saved_in = checkpoint.run.config.training.precision if checkpoint.run is not None else "another precision"
        if self.scaler.is_enabled() and not checkpoint.scaler:
            logger.info(
                "%s was saved in %s, without a loss scale: the fp16 loss scaler starts afresh (scale %g).",
                path,
                saved_in,
                self.scaler.get_scale(),
            )
            return
        if not self.scaler.is_enabled() and checkpoint.scaler:
            logger.info("%s was saved in fp16: its loss scale is not used in %s.", path, self.config.precision)
            return
        self.scaler.load_state_dict(checkpoint.scaler)

    def restore_models(self, checkpoint: GanCheckpoint, path: Path) -> None:
        """The generator, discriminator and recognizer weights of a checkpoint (strictly), nothing else."""
        restore_weights(self.models.generator, checkpoint.generator, "generator", path)
        restore_weights(self.models.discriminator, checkpoint.discriminator, "discriminator", path)
        restore_weights(self.models.recognizer, checkpoint.recognizer, "recognizer", path)


_WEIGHTED_TERMS = ("pixel_loss", "adv_loss", "ctc_loss", "rec_feat_loss", "perceptual_loss")
_LOGGED_TRAIN_TERMS = (
    "g_loss",
    "d_loss",
    "ctc_loss_raw",
    *_WEIGHTED_TERMS,
    *(f"{term}_weighted" for term in _WEIGHTED_TERMS),
)
"""Raw terms (``ctc_loss`` after the ceiling, ``ctc_loss_raw`` before it) and each as weighted in g_loss."""


def _column_mask(widths: torch.Tensor, padded_width: int) -> torch.Tensor:
    """(batch, 1, 1, padded_width) bool: True on each line's own columns, False on the padding."""
    return (torch.arange(padded_width, device=widths.device)[None, :] < widths[:, None])[:, None, None, :]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked samples; 0 (with a gradient path) when none is selected."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ------------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class GanTrainingOutcome:
    epochs_run: int
    stopped_early: bool
    best_epoch_per_metric: dict[str, int | None]
    best_value_per_metric: dict[str, float | None]
    final_metrics: dict[str, float]
    checkpoint_folder: str


def train_gan(
    trainer: GanTrainer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    checkpoint_folder: Path,
    run_metadata: GanRunMetadata | None,
    tracker: MetricTracker,
) -> GanTrainingOutcome:
    """Epochs until ``training.epochs`` or early stopping; checkpoints last, best by monitor, best per metric.

    ``run_metadata`` (charset, validated config, model settings) goes into every checkpoint.
    """
    config = trainer.config
    stopped_early = False
    metrics: dict[str, float] = {}
    while trainer.epoch < config.epochs:
        metrics = trainer.train_epoch(train_loader)
        if not trainer.group.is_main:
            # Rank 0 validates, logs and saves; the others wait for its decision to stop.
            if trainer.group.broadcast_from_main(False):
                break
            continue
        validation = trainer.validate(val_loader)
        metrics |= validation.as_logged("val")
        tracker.log_metrics(metrics, step=trainer.epoch)
        tracker.log_dict(trainer.gradient_report, f"gradients/epoch_{trainer.epoch:03d}.json")
        # Every tracker is updated before the state is taken, so a best checkpoint knows it is the best.
        improved: list[CheckpointName] = [
            best_of_metric(metric)
            for metric, best in trainer.best_per_metric.items()
            if best.update(trainer.epoch, validation.value_of(metric))
        ]
        if trainer.best_by_monitor.update(trainer.epoch, validation.value_of(config.monitor)):
            improved.append(BEST)
        if trainer.early_stopping is not None:
            stopped_early = trainer.early_stopping.update(
                trainer.epoch, validation.value_of(config.monitor)
            ).should_stop
        # Written once, under the first name; the other names link to that file. ``last`` comes last: a crash
        # in between leaves it at the previous epoch, which a resume then runs again.
        first, *others = [checkpoint_file(checkpoint_folder, name) for name in [*improved, LAST]]
        save_gan_checkpoint(trainer.checkpoint(run_metadata), first)
        for path in others:
            copy_checkpoint(first, path)
        if trainer.group.broadcast_from_main(stopped_early):
            break
    if trainer.group.is_main and config.early_stopping is not None and config.early_stopping.restore_best_weights:
        best = checkpoint_file(checkpoint_folder, BEST)
        trainer.restore_models(load_gan_checkpoint(best, "training.early_stopping.restore_best_weights"), best)
    return GanTrainingOutcome(
        epochs_run=trainer.epoch,
        stopped_early=stopped_early,
        best_epoch_per_metric={m: t.best_epoch for m, t in trainer.best_per_metric.items()},
        best_value_per_metric={m: t.best_value for m, t in trainer.best_per_metric.items()},
        final_metrics={name: value for name, value in metrics.items() if math.isfinite(value)},
        checkpoint_folder=str(checkpoint_folder),
    )


def frozen_copy(module: nn.Module) -> nn.Module:
    """An evaluation-mode copy whose weights never train (the perceptual extractor)."""
    copied = copy.deepcopy(module).eval()
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def clip_with_norm(model: nn.Module, max_norm: float, total_norm: torch.Tensor) -> None:
    """Scale ``model``'s gradients so their global norm, already measured as ``total_norm``, is at most
    ``max_norm``: torch's ``clip_grads_with_norm_`` (torch 2.6), and the same arithmetic on torch 2.4 and 2.5."""
    if hasattr(torch.nn.utils, "clip_grads_with_norm_"):
        torch.nn.utils.clip_grads_with_norm_(model.parameters(), max_norm, total_norm)
        return
    gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
    clip_coefficient = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    torch._foreach_mul_(gradients, clip_coefficient.to(gradients[0].device))
