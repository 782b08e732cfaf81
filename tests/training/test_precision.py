"""training.precision: bf16 and fp16 (with loss scaling) run a real GAN step, with the CTC kept in fp32."""

import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.config import TrainingConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer

TINY = {
    "device": "cpu",
    "batch_size": 2,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "patch", "channels": [8, 16]},
}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_training_step_runs_in_each_precision(precision: str):
    config = TrainingConfig.model_validate({**TINY, "precision": precision})
    charset = Charset.from_texts(["lame"])
    torch.manual_seed(0)
    recognizer = build_recognizer(config.recognizer, charset.num_classes).requires_grad_(False).eval()
    models = GanModels(
        build_generator(config.generator), build_discriminator(config.discriminator, 5), recognizer, None
    )
    trainer = GanTrainer(models, charset, config, torch.device("cpu"))
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    clean = torch.ones(2, 1, 32, 64)
    clean[:, :, 10:20, 8:56] = 0.1
    batch = LineBatch(
        ["a", "b"],
        (clean * 0.6 + 0.3),
        clean,
        torch.tensor([64, 60]),
        torch.tensor([charset.encode("lame"), charset.encode("lame")]),
        torch.tensor([4, 4]),
        ["lame", "lame"],
    )
    before = [parameter.detach().clone() for parameter in models.generator.parameters()]
    sums = EpochSums()
    trainer.train_step(batch, ctc_factor=1.0, sums=sums)
    means = sums.means()
    assert all(torch.isfinite(torch.tensor(value)) for value in means.values()), means
    moved = any(not torch.equal(b, a) for b, a in zip(before, models.generator.parameters(), strict=True))
    # fp16 may skip its first step: GradScaler starts at a scale that overflows, then lowers it.
    assert moved or precision == "fp16"
