"""The GAN and recognizer training on a real CUDA device: what the CPU tests can only emulate (tests/training/
test_cuda_rules.py). Skipped, with the reason, where torch sees no GPU; `scripts/gpu_check.sh` runs them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from htr_pipeline.checkpoints import load_gan_checkpoint, restore_rng_states, rng_states, save_gan_checkpoint
from htr_pipeline.config import AugmentationConfig, TrainingConfig
from htr_pipeline.data.line_batches import LineBatch, LinePair, collate_line_pairs
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.models.freezing import frozen_for_input_gradients
from htr_pipeline.training import losses
from htr_pipeline.training.augmentation import augment_lines
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer
from htr_pipeline.training.runtime import configure_cuda
from tests.conftest import CUDA_TESTS
from tests.training.test_cuda_rules import CHARSET, tiny_batch, tiny_config

pytestmark = CUDA_TESTS

FP16_SKIPPED_STEPS_AT_MOST = 8
"""fp16's loss scaler starts at 65,536 and halves it at each overflowing step, which it skips."""
FP16_RELATIVE_TOLERANCE = 1e-2
"""The frozen recognizer's training-mode cuDNN kernel may differ from its inference kernel in the last bits."""


@pytest.fixture
def cuda() -> Iterator[torch.device]:
    device = torch.device("cuda", torch.cuda.current_device())
    yield device
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = False


def cuda_trainer(config: TrainingConfig, device: torch.device) -> GanTrainer:
    torch.manual_seed(0)
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes).to(device)
    if config.recognizer_during_gan == "frozen":
        recognizer.requires_grad_(False)
    models = GanModels(
        build_generator(config.generator).to(device),
        build_discriminator(config.discriminator, CHARSET.num_classes).to(device),
        recognizer,
        None,
    )
    trainer = GanTrainer(models, CHARSET, config, device)
    models.generator.train()
    models.discriminator.train()
    recognizer.train(config.recognizer_during_gan == "fine_tune")
    return trainer


def parameters_of(module: nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in module.parameters()]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_gan_step_with_the_frozen_recognizer_runs_on_cuda(cuda: torch.device, precision: str):
    trainer = cuda_trainer(tiny_config(precision, device="cuda"), cuda)
    generator_before = parameters_of(trainer.models.generator)
    recognizer_before = parameters_of(trainer.models.recognizer)
    sums = EpochSums()
    for _ in range(FP16_SKIPPED_STEPS_AT_MOST + 1):
        trainer.train_step(tiny_batch().to(cuda), ctc_factor=1.0, sums=sums)
    means = sums.means()
    assert all(torch.isfinite(torch.tensor(value)) for value in means.values()), means
    moved = [
        not torch.equal(a, b) for a, b in zip(generator_before, trainer.models.generator.parameters(), strict=True)
    ]
    assert any(moved)
    after = trainer.models.recognizer.parameters()
    assert all(torch.equal(a, b) for a, b in zip(recognizer_before, after, strict=True))


def test_the_frozen_recognizer_reads_on_cuda_as_in_evaluation_mode(cuda: torch.device):
    config = tiny_config(device="cuda")
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes).to(cuda).requires_grad_(False).eval()
    images = torch.rand(2, 1, 32, 64, device=cuda)
    with torch.no_grad():
        expected = recognizer(images).logits
    restored = images.clone().requires_grad_(True)
    with frozen_for_input_gradients(recognizer):
        logits = recognizer(restored).logits
    logits.sum().backward()  # cuDNN differentiates the BiLSTM: it ran in training mode
    torch.testing.assert_close(logits.detach(), expected, rtol=FP16_RELATIVE_TOLERANCE, atol=1e-5)
    assert restored.grad is not None and all(parameter.grad is None for parameter in recognizer.parameters())


def test_rnns_logits_and_ctc_stay_fp32_under_bf16_autocast_on_cuda(cuda: torch.device):
    config = tiny_config("bf16", device="cuda")
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes).to(cuda)
    discriminator = build_discriminator(config.discriminator, CHARSET.num_classes).to(cuda)
    batch = tiny_batch().to(cuda)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        reading = recognizer(batch.clean)
        text = discriminator.text_encoder(batch.labels, batch.label_lengths)
        trunk_dtype = reading.trunk[-1].dtype
    assert trunk_dtype == torch.bfloat16  # the convolutions do run in bf16
    assert reading.logits.dtype == reading.features.dtype == text.dtype == torch.float32


def count_synchronisations(action: Callable[[], object]) -> int:
    """How often ``action`` makes the host wait for the GPU (torch's sync debug mode, as warnings)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            action()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(warning.message) for warning in caught)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_waits_for_the_gpu_only_inside_atens_ctc(cuda: torch.device, precision: str):
    """ATen's CUDA CTC copies its host lengths to the GPU with blocking copies, forward and backward: no placement
    of the lengths avoids those. Everything else in a step (the batch's copy from pinned memory included) must
    queue without a wait: the step synchronises exactly as often as its CTC alone does."""
    trainer = cuda_trainer(tiny_config(precision, device="cuda"), cuda)
    pinned = tiny_batch().pin_memory()
    trainer.train_step(pinned.to(cuda), ctc_factor=1.0, sums=EpochSums())  # allocations and cuDNN plans first
    step_waits = count_synchronisations(lambda: trainer.train_step(pinned.to(cuda), 1.0, EpochSums()))

    batch = pinned.to(cuda)
    logits = torch.randn(2, 16, CHARSET.num_classes, device=cuda, requires_grad=True)
    time_steps = (batch.host_widths + 3) // 4

    def ctc_alone() -> None:
        result = losses.ctc_loss_per_sample(logits, batch.labels, time_steps, batch.host_label_lengths, 0)
        result.per_sample.sum().backward()

    ctc_alone()
    assert step_waits == count_synchronisations(ctc_alone)


def test_a_loader_with_pinning_yields_pinned_batches(cuda: torch.device):
    pairs = [
        LinePair(f"s{i}", torch.rand(1, 32, 64), torch.rand(1, 32, 64), "ab", torch.tensor([1, 2])) for i in range(4)
    ]
    loader = DataLoader(pairs, batch_size=2, collate_fn=lambda batch: collate_line_pairs(batch, 4), pin_memory=True)
    batch: LineBatch = next(iter(loader))
    assert all(t.is_pinned() for t in (batch.degraded, batch.clean, batch.widths, batch.labels, batch.label_lengths))
    assert batch.host_widths.device.type == "cpu" and batch.host_label_lengths.device.type == "cpu"


def test_augmentation_is_the_same_on_cpu_and_cuda(cuda: torch.device):
    images = torch.rand(4, 1, 32, 96)
    widths = torch.tensor([96, 80, 64, 40])
    settings = AugmentationConfig(probability=1.0)
    on_cpu = augment_lines(images, widths, settings, torch.Generator().manual_seed(5))
    on_cuda = augment_lines(images.to(cuda), widths.to(cuda), settings, torch.Generator().manual_seed(5))
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-4)


def test_random_states_are_saved_per_device_and_restored_on_fewer(cuda: torch.device, caplog):
    torch.cuda.manual_seed_all(7)
    saved = rng_states()
    assert len(saved["cuda"]) == torch.cuda.device_count()
    expected = torch.rand(3, device=cuda)
    one_more = {**saved, "cuda": [*saved["cuda"], saved["cuda"][0]]}  # as if saved on one GPU more
    with caplog.at_level("INFO", logger="htr_pipeline.checkpoints"):
        restore_rng_states(one_more)
    assert torch.equal(torch.rand(3, device=cuda), expected)
    assert "restored" in caplog.text


def deterministic_steps(device: torch.device, steps: int) -> list[torch.Tensor]:
    config = tiny_config("bf16", device="cuda", speed={"deterministic": True})
    configure_cuda(device, config.speed, cudnn_benchmark=False)
    trainer = cuda_trainer(config, device)
    for _ in range(steps):
        trainer.train_step(tiny_batch().to(device), ctc_factor=1.0, sums=EpochSums())
    return parameters_of(trainer.models.generator)


def test_the_deterministic_setting_repeats_a_run_bit_for_bit_on_cuda(cuda: torch.device):
    first, second = deterministic_steps(cuda, 3), deterministic_steps(cuda, 3)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_compiled_model_compiles_each_batch_shape_once(cuda: torch.device):
    import torch._dynamo

    torch._dynamo.reset()
    config = tiny_config("bf16", device="cuda", speed={"compile": True})
    trainer = cuda_trainer(config, cuda)
    for model in (trainer.models.generator, trainer.models.discriminator):
        model.compile(dynamic=False)
    batches = [tiny_batch()]
    narrower = tiny_batch()
    narrower = LineBatch(
        narrower.sample_ids,
        narrower.degraded[..., :48],
        narrower.clean[..., :48],
        torch.tensor([48, 40]),
        narrower.labels,
        narrower.label_lengths,
        narrower.texts,
    )
    batches.append(narrower)
    for batch in batches:
        trainer.train_step(batch.to(cuda), ctc_factor=1.0, sums=EpochSums())
    compiled = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for batch in batches * 2:
        trainer.train_step(batch.to(cuda), ctc_factor=1.0, sums=EpochSums())
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == compiled  # shapes seen: nothing new


def test_a_checkpoint_saved_on_cuda_resumes_there_in_another_precision(cuda: torch.device, tmp_path: Path):
    trainer = cuda_trainer(tiny_config("bf16", device="cuda"), cuda)
    path = tmp_path / "last.pt"
    save_gan_checkpoint(trainer.checkpoint(None), path)
    resumed = cuda_trainer(tiny_config("fp16", device="cuda"), cuda)
    resumed.restore(load_gan_checkpoint(path, "training.resume_from"), path)
    resumed.train_step(tiny_batch().to(cuda), ctc_factor=1.0, sums=EpochSums())
