"""`--env previous_system` builds the previous-system-scale models, and one real training step of them runs on CPU."""

import string

import pytest
import torch
from kedro.config import OmegaConfigLoader

from htr_pipeline import settings
from htr_pipeline.charset import Charset
from htr_pipeline.config import validate_parameters
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer, frozen_copy
from tests.conftest import PROJECT_ROOT

PREVIOUS_SYSTEM_SYMBOLS = 108  # the previous system's run: 108 characters + CTC blank = 109 classes


def _previous_system_config():
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), env="previous_system", **settings.CONFIG_LOADER_ARGS
    )
    return validate_parameters(loader["parameters"])


def _parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_the_previous_system_environment_builds_its_scale_of_models():
    training = _previous_system_config().training
    generator = build_generator(training.generator)
    recognizer = build_recognizer(training.recognizer, PREVIOUS_SYSTEM_SYMBOLS + 1)
    assert 30_000_000 < _parameter_count(generator) < 32_000_000
    assert recognizer.time_steps(torch.tensor([1024])).item() == 128


@pytest.mark.slow
def test_one_training_step_of_the_previous_system_scale_models_on_cpu():
    config = _previous_system_config()
    training = config.training
    printable = string.ascii_letters + string.digits + string.punctuation + " " + "àâçéèêëîïôûùüœÀ"
    charset = Charset(symbols=tuple(sorted(printable))[:PREVIOUS_SYSTEM_SYMBOLS])
    assert len(charset.symbols) == PREVIOUS_SYSTEM_SYMBOLS
    torch.manual_seed(0)
    recognizer = build_recognizer(training.recognizer, charset.num_classes).requires_grad_(False)
    models = GanModels(
        generator=build_generator(training.generator),
        discriminator=build_discriminator(training.discriminator, charset.num_classes),
        recognizer=recognizer,
        feature_extractor=frozen_copy(recognizer).trunk_features,
    )
    trainer = GanTrainer(models, charset, training, torch.device("cpu"))
    clean = torch.ones(training.batch_size, 1, config.data.image_height, config.data.max_width)
    clean[:, :, 40:90, 100:900] = 0.1
    text = "Versailles, deux Aout mil neuf cent"
    labels = torch.tensor([charset.encode(text)] * training.batch_size)
    batch = LineBatch(
        sample_ids=["a", "b"][: training.batch_size],
        degraded=(clean * 0.7 + 0.2).clamp(0, 1),
        clean=clean,
        widths=torch.full((training.batch_size,), config.data.max_width),
        labels=labels,
        label_lengths=torch.full((training.batch_size,), len(text)),
        texts=[text] * training.batch_size,
    )
    before = [parameter.detach().clone() for parameter in models.generator.parameters()]
    sums = EpochSums()
    trainer.train_step(batch, ctc_factor=1.0, sums=sums)
    means = sums.means()
    assert all(torch.isfinite(torch.tensor(value)) for value in means.values()), means
    assert means["ctc_loss_raw"] > 0
    assert any(not torch.equal(b, a) for b, a in zip(before, models.generator.parameters(), strict=True))
