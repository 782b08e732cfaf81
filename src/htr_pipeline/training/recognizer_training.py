"""Training a CTC recognizer on lines with text: stage 1 (clean lines), the judge, and the degraded-trained
baseline all use this one loop, then the gate that refuses a recognizer that does not read."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils.data import DataLoader

from htr_pipeline.charset import Charset
from htr_pipeline.config import RecognizerPretrainingConfig, TrainingConfig
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.precision import autocast
from htr_pipeline.progress import tqdm
from htr_pipeline.training.augmentation import augment_lines
from htr_pipeline.training.early_stopping import PlateauAwareEarlyStopping
from htr_pipeline.training.losses import ctc_loss_per_sample
from htr_pipeline.training.runtime import MetricTracker, adam, grad_scaler
from htr_pipeline.training.validation import score_lines

LineKind = Literal["clean", "degraded"]

IN_LOOP_RECOGNIZER = "in_loop"
"""The recognizer the generator is trained through (stage 1; frozen in the GAN's CTC and feature losses)."""
JUDGE_RECOGNIZER = "judge"
"""Trained apart on the clean lines and never seen by a GAN loss: evaluation's headline reader."""
DEGRADED_TRAINED_RECOGNIZER = "degraded_trained"
"""The in-loop architecture trained on degraded lines: the baseline restoration must beat."""
REFERENCE_RECOGNIZERS = (JUDGE_RECOGNIZER, DEGRADED_TRAINED_RECOGNIZER)
"""The recognizers trained beside the in-loop one, by the names checkpoints and evaluation use."""


class RecognizerDoesNotReadError(RuntimeError):
    """A recognizer's best val CER is above ``training.recognizer_pretraining.max_val_cer``: nothing trained
    against it (or scored with it) would mean anything."""


@dataclass(frozen=True)
class RecognizerTrainingResult:
    best_val_cer: float
    best_epoch: int
    epochs_run: int
    steps_run: int
    val_cer_by_epoch: list[float] = field(default_factory=list)


def pretrain_recognizer(
    recognizer: torch.nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    charset: Charset,
    config: TrainingConfig,
    device: torch.device,
    tracker: MetricTracker,
    seed: int | None = None,
    metric_prefix: str = "recognizer",
    lines: LineKind = "clean",
) -> RecognizerTrainingResult:
    """Train on ``lines`` of the train split with the recipe of ``training.recognizer_pretraining``; keep (and
    leave loaded) the weights of the epoch with the best val CER, read on the same kind of valid lines."""
    settings = config.recognizer_pretraining
    seed = config.seed if seed is None else seed
    optimizer = adam(recognizer.parameters(), device, lr=settings.learning_rate)
    total_steps = settings.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(settings, total_steps))
    scaler = grad_scaler(device, config.precision)
    augmentation_draws = torch.Generator().manual_seed(seed)
    stopper = PlateauAwareEarlyStopping(settings.patience, settings.patience_from_cer, settings.min_steps)
    best_weights = copy.deepcopy(recognizer.state_dict())
    epoch, steps, val_cers = 0, 0, []
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        train_loader.batch_sampler.set_epoch(epoch)
        recognizer.train()
        loss_sum = torch.zeros((), device=device)
        infinite = torch.zeros((), dtype=torch.int64, device=device)
        progress = tqdm(
            train_loader, desc=f"{metric_prefix} epoch {epoch}/{settings.epochs}", unit="batch", leave=False
        )
        for batch in progress:
            batch = batch.to(device)
            images = batch.clean if lines == "clean" else batch.degraded
            if settings.augmentation is not None:
                images = augment_lines(images, batch.widths, settings.augmentation, augmentation_draws)
            with autocast(device, config.precision):
                output = recognizer(images)
            # The CTC's lengths are the host copies: reading them back from the device would wait for it.
            time_steps = ctc_time_steps(batch.host_widths, recognizer.width_downsampling)
            label_lengths = batch.host_label_lengths
            ctc = ctc_loss_per_sample(output.logits, batch.labels, time_steps, label_lengths, charset.blank_index)
            ctc_loss = ctc.per_sample.mean()
            loss = ctc_loss
            if output.shortcut_logits is not None and settings.shortcut_weight > 0:
                shortcut = ctc_loss_per_sample(
                    output.shortcut_logits, batch.labels, time_steps, label_lengths, charset.blank_index
                )
                loss = loss + settings.shortcut_weight * shortcut.per_sample.mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if config.optimizer.gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(recognizer.parameters(), config.optimizer.gradient_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            steps += 1
            loss_sum += ctc_loss.detach()
            infinite += ctc.infinite_count
            if progress.n % 10 == 9:
                progress.set_postfix(ctc_loss=float(loss_sum) / (progress.n + 1))
        recognizer.eval()
        val = score_lines(
            val_loader,
            recognizer,
            charset,
            device,
            config.precision,
            config.combined_cer_weight,
            read_clean=lines == "clean",
        )
        val_cers.append(val.cer)
        decision = stopper.update(epoch, val.cer, steps)
        tracker.log_metrics(
            {
                f"{metric_prefix}/train_ctc_loss": float(loss_sum) / max(len(train_loader), 1),
                f"{metric_prefix}/ctc_infinite_samples": float(infinite),
                f"{metric_prefix}/val_cer": val.cer,
                f"{metric_prefix}/val_wer": val.wer,
                f"{metric_prefix}/learning_rate": scheduler.get_last_lr()[0],
                f"{metric_prefix}/epoch_seconds": time.perf_counter() - started,
            },
            step=epoch,
        )
        if decision.improved:
            best_weights = copy.deepcopy(recognizer.state_dict())
        if decision.should_stop:
            break
    recognizer.load_state_dict(best_weights)
    return RecognizerTrainingResult(
        best_val_cer=float(stopper.best.best_value),
        best_epoch=int(stopper.best.best_epoch),
        epochs_run=epoch,
        steps_run=steps,
        val_cer_by_epoch=val_cers,
    )


def learning_rate_factor(settings: RecognizerPretrainingConfig, total_steps: int):
    """The multiplier of the peak learning rate at each optimiser step: linear warm-up, then constant or a cosine
    down to 1 % of the peak at ``total_steps``."""
    warmup = settings.warmup_steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if settings.schedule == "constant":
            return 1.0
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def check_recognizer_reads(
    best_val_cer: float, settings: RecognizerPretrainingConfig, what: str, epochs_run: int | None, steps_run: int | None
) -> None:
    """The gate between the stages: raise :class:`RecognizerDoesNotReadError` with the figures and what to try
    when ``best_val_cer`` is above ``max_val_cer``."""
    if best_val_cer <= settings.max_val_cer:
        return
    trained = (
        ""
        if epochs_run is None
        else f" after {epochs_run} epoch{'' if epochs_run == 1 else 's'} ({steps_run} optimiser steps)"
    )
    raise RecognizerDoesNotReadError(
        f"{what} does not read: its best val CER is {best_val_cer:.3f}{trained}, above "
        f"training.recognizer_pretraining.max_val_cer={settings.max_val_cer}. No GAN epoch was run against it. "
        "Try: more epochs (training.recognizer_pretraining.epochs; a CTC recognizer often needs several hundred "
        "steps to leave the all-blank plateau), the real-lines preset (`kedro run --env real_lines`), a smaller "
        "learning rate or a longer warm-up, or check that the transcriptions match the images "
        "(`kedro run --pipeline=diagnostics`)."
    )
