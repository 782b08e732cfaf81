"""training.precision: bf16 and fp16 (with loss scaling) run a real GAN step, with the CTC kept in fp32; a run
resumed in another precision says what it did with the loss scale."""

from pathlib import Path

import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    GanRunMetadata,
    ReferenceRecognizers,
    TrainedRunConfig,
    load_gan_checkpoint,
    save_gan_checkpoint,
)
from htr_pipeline.config import DataConfig, TrainingConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer
from htr_pipeline.training.stages import gan_run_metadata
from tests.conftest import small_synthetic_parameters

TINY = {
    "device": "cpu",
    "batch_size": 2,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "patch", "channels": [8, 16]},
}
CHARSET = Charset.from_texts(["lame"])
FP16_RELATIVE_TOLERANCE = 1e-3
"""fp16 keeps about 3 significant digits; the losses are reduced in fp32, so one step agrees with fp32 to that."""


def tiny_trainer(precision: str) -> GanTrainer:
    config = TrainingConfig.model_validate({**TINY, "precision": precision})
    torch.manual_seed(0)
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes).requires_grad_(False).eval()
    models = GanModels(
        build_generator(config.generator), build_discriminator(config.discriminator, 5), recognizer, None
    )
    return GanTrainer(models, CHARSET, config, torch.device("cpu"))


def tiny_batch() -> LineBatch:
    clean = torch.ones(2, 1, 32, 64)
    clean[:, :, 10:20, 8:56] = 0.1
    return LineBatch(
        ["a", "b"],
        (clean * 0.6 + 0.3),
        clean,
        torch.tensor([64, 60]),
        torch.tensor([CHARSET.encode("lame"), CHARSET.encode("lame")]),
        torch.tensor([4, 4]),
        ["lame", "lame"],
    )


def generator_moved(trainer: GanTrainer, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(b, a) for b, a in zip(before, trainer.models.generator.parameters(), strict=True))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_training_step_runs_in_each_precision(precision: str):
    trainer = tiny_trainer(precision)
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    before = [parameter.detach().clone() for parameter in trainer.models.generator.parameters()]
    sums = EpochSums()
    trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=sums)
    means = sums.means()
    assert all(torch.isfinite(torch.tensor(value)) for value in means.values()), means
    # fp16 may skip its first step: GradScaler starts at a scale that overflows, then lowers it.
    assert generator_moved(trainer, before) or precision == "fp16"


def losses_per_step(trainer: GanTrainer, steps: int) -> list[dict[str, float]]:
    per_step = []
    for _ in range(steps):
        sums = EpochSums()
        trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=sums)
        per_step.append(sums.means(("g_loss", "pixel_loss", "ctc_loss")))
    return per_step


def test_fp16_reads_as_fp32_then_trains_once_the_scaler_has_backed_off():
    fp32 = losses_per_step(tiny_trainer("fp32"), 1)[0]
    trainer = tiny_trainer("fp16")
    initial_scale = trainer.scaler.get_scale()
    before = [parameter.detach().clone() for parameter in trainer.models.generator.parameters()]
    fp16 = losses_per_step(trainer, 6)
    # The same models on the same batch: the first step's losses agree with fp32 to fp16's precision.
    for term, value in fp32.items():
        assert fp16[0][term] == pytest.approx(value, rel=FP16_RELATIVE_TOLERANCE), term
    # Overflowing steps were skipped and the scale halved each time; then the generator learnt.
    assert trainer.scaler.get_scale() < initial_scale
    assert generator_moved(trainer, before)
    assert fp16[-1]["g_loss"] < fp16[0]["g_loss"]
    assert fp16[-1]["pixel_loss"] < fp16[0]["pixel_loss"]


def run_metadata(precision: str) -> GanRunMetadata:
    config = TrainingConfig.model_validate({**TINY, "precision": precision})
    run_config = TrainedRunConfig(data=DataConfig.model_validate(small_synthetic_parameters()["data"]), training=config)
    return gan_run_metadata(CHARSET, run_config, ReferenceRecognizers(CHARSET))


def test_a_run_resumed_in_fp16_from_a_bf16_checkpoint_starts_its_loss_scaler_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    saved = tiny_trainer("bf16")
    path = tmp_path / "last.pt"
    save_gan_checkpoint(saved.checkpoint(run_metadata("bf16")), path)

    resumed = tiny_trainer("fp16")
    with caplog.at_level("INFO", logger="htr_pipeline.training.gan_training"):
        resumed.restore(load_gan_checkpoint(path, "training.resume_from"), path)
    assert resumed.scaler.is_enabled() and resumed.scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()
    assert "saved in bf16, without a loss scale: the fp16 loss scaler starts afresh" in caplog.text
    resumed.train_step(tiny_batch(), ctc_factor=1.0, sums=EpochSums())


def test_a_run_resumed_in_bf16_from_an_fp16_checkpoint_says_it_drops_the_loss_scale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "last.pt"
    save_gan_checkpoint(tiny_trainer("fp16").checkpoint(run_metadata("fp16")), path)
    resumed = tiny_trainer("bf16")
    with caplog.at_level("INFO", logger="htr_pipeline.training.gan_training"):
        resumed.restore(load_gan_checkpoint(path, "training.resume_from"), path)
    assert "saved in fp16: its loss scale is not used in bf16" in caplog.text
