"""Stage 1: the CTC recognizer on clean training lines, early-stopped on validation CER."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from htr_pipeline.charset import Charset
from htr_pipeline.config import TrainingConfig
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.training.early_stopping import EarlyStopping
from htr_pipeline.training.losses import ctc_loss_per_sample
from htr_pipeline.training.runtime import MetricTracker, autocast, grad_scaler
from htr_pipeline.training.validation import score_lines


@dataclass(frozen=True)
class RecognizerTrainingResult:
    best_val_cer: float
    best_epoch: int
    epochs_run: int


def pretrain_recognizer(
    recognizer: torch.nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    charset: Charset,
    config: TrainingConfig,
    device: torch.device,
    tracker: MetricTracker,
) -> RecognizerTrainingResult:
    """Train on clean lines; keep (and leave loaded) the weights of the epoch with the best val CER."""
    settings = config.recognizer_pretraining
    optimizer = torch.optim.Adam(recognizer.parameters(), lr=settings.learning_rate)
    scaler = grad_scaler(device, config.precision)
    stopper = EarlyStopping(mode="min", patience=settings.patience, min_delta=0.0)
    best_weights = copy.deepcopy(recognizer.state_dict())
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        train_loader.batch_sampler.set_epoch(epoch)
        recognizer.train()
        loss_sum = torch.zeros((), device=device)
        infinite = torch.zeros((), dtype=torch.int64, device=device)
        progress = tqdm(train_loader, desc=f"recognizer epoch {epoch}/{settings.epochs}", unit="batch", leave=False)
        for batch in progress:
            batch = batch.to(device)
            with autocast(device, config.precision):
                logits = recognizer(batch.clean).logits
            ctc = ctc_loss_per_sample(
                logits,
                batch.labels,
                ctc_time_steps(batch.widths, recognizer.width_downsampling),
                batch.label_lengths,
                blank=charset.blank_index,
            )
            loss = ctc.per_sample.mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if config.optimizer.gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(recognizer.parameters(), config.optimizer.gradient_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach()
            infinite += ctc.infinite_count
            if progress.n % 10 == 9:
                progress.set_postfix(ctc_loss=float(loss_sum) / (progress.n + 1))
        recognizer.eval()
        val = score_lines(
            val_loader, recognizer, charset, device, config.precision, config.combined_cer_weight, read_clean=True
        )
        decision = stopper.update(epoch, val.cer)
        tracker.log_metrics(
            {
                "recognizer/train_ctc_loss": float(loss_sum) / max(len(train_loader), 1),
                "recognizer/ctc_infinite_samples": float(infinite),
                "recognizer/val_cer": val.cer,
                "recognizer/val_wer": val.wer,
                "recognizer/epoch_seconds": time.perf_counter() - started,
            },
            step=epoch,
        )
        if decision.improved:
            best_weights = copy.deepcopy(recognizer.state_dict())
        if decision.should_stop:
            break
    recognizer.load_state_dict(best_weights)
    return RecognizerTrainingResult(
        best_val_cer=float(stopper.best.best_value), best_epoch=int(stopper.best.best_epoch), epochs_run=epoch
    )
