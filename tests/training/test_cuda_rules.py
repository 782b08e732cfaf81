"""The CUDA path's rules, held on the CPU: what a GPU would refuse or stall on is emulated or observed here.

- cuDNN differentiates an RNN only in training mode: :func:`cudnn_rnn_rules` makes the CPU refuse the same
  backward, so a GAN step that would crash on its first CUDA step crashes here.
- Autocast would run cuDNN RNNs in fp16: every RNN call is recorded with the autocast state around it.
- Host-device traffic: tensors on the ``meta`` device stand in for a GPU, and a dispatch mode records every copy
  from the CPU to it, with whether it would block the host.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data._utils.pin_memory import pin_memory as loader_pin_memory

from htr_pipeline.charset import Charset
from htr_pipeline.config import AugmentationConfig, SpeedConfig, TrainingConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.models.freezing import frozen_for_input_gradients
from htr_pipeline.scoring import lines as scoring_lines
from htr_pipeline.training import losses
from htr_pipeline.training.augmentation import augment_lines
from htr_pipeline.training.data_loading import width_multiple
from htr_pipeline.training.distributed import DataParallelGroup
from htr_pipeline.training.gan_training import EpochSums, GanModels, GanTrainer
from htr_pipeline.training.runtime import adam, configure_cuda, load_optimizer_state

CHARSET = Charset.from_texts(["lame ink"])
TEXTS = ["lame", "ink"]
CUDNN_RNN_BACKWARD_ERROR = "cudnn RNN backward can only be called in training mode"


def tiny_config(precision: str = "fp32", **overrides: object) -> TrainingConfig:
    """Tiny models; a two-layer BiLSTM with dropout (what eval mode must switch off) and a dual-modal
    discriminator reading the recognizer's text through its GRU."""
    return TrainingConfig.model_validate(
        {
            "device": "cpu",
            "batch_size": 2,
            "precision": precision,
            "recognizer": {
                "conv_channels": [8, 16],
                "width_downsampling": 4,
                "lstm_hidden": 16,
                "lstm_layers": 2,
                "dropout": 0.5,
            },
            "generator": {"variant": "unet", "channels": [8, 16]},
            "discriminator": {"variant": "dual_modal", "channels": [8, 16], "text_embedding_dim": 8},
            "judge": None,
            **overrides,
        }
    )


def tiny_trainer(config: TrainingConfig, group: DataParallelGroup | None = None) -> GanTrainer:
    torch.manual_seed(0)
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes)
    if config.recognizer_during_gan == "frozen":
        recognizer.requires_grad_(False)
    models = GanModels(
        build_generator(config.generator),
        build_discriminator(config.discriminator, CHARSET.num_classes),
        recognizer,
        None,
    )
    extra = {} if group is None else {"group": group}
    trainer = GanTrainer(models, CHARSET, config, torch.device("cpu"), **extra)
    models.generator.train()
    models.discriminator.train()
    recognizer.train(config.recognizer_during_gan == "fine_tune")
    return trainer


def tiny_batch() -> LineBatch:
    clean = torch.ones(2, 1, 32, 64)
    clean[:, :, 10:20, 8:56] = 0.1
    labels = [CHARSET.encode(text) for text in TEXTS]
    return LineBatch(
        ["a", "b"],
        clean * 0.6 + 0.3,
        clean,
        torch.tensor([64, 56]),
        torch.tensor([labels[0], labels[1] + [0]]),
        torch.tensor([len(label) for label in labels]),
        TEXTS,
    )


# ------------------------------------------------------------------------------- RNNs as cuDNN runs them


@dataclass
class RnnCall:
    module: nn.Module
    training: bool
    dropout: float
    autocast: bool
    input_dtype: torch.dtype
    output: torch.Tensor


@dataclass
class RnnCalls:
    calls: list[RnnCall] = field(default_factory=list)

    def with_gradient(self) -> list[RnnCall]:
        return [call for call in self.calls if call.output.requires_grad]


def record_rnn_calls(monkeypatch: pytest.MonkeyPatch, refuse_eval_backward: bool) -> RnnCalls:
    """Record every nn.LSTM and nn.GRU call; with ``refuse_eval_backward``, a backward through one run in
    evaluation mode raises cuDNN's error, as it does on a GPU."""
    calls = RnnCalls()
    for rnn_class in (nn.LSTM, nn.GRU):
        original_forward = rnn_class.forward

        def forward(self: nn.RNNBase, *args: object, _original=original_forward, **kwargs: object) -> object:
            result = _original(self, *args, **kwargs)
            output = result[0]
            autocast = torch.is_autocast_enabled(output.device.type)
            calls.calls.append(RnnCall(self, self.training, self.dropout, autocast, args[0].dtype, output))
            if refuse_eval_backward and not self.training and output.requires_grad:

                def refuse(gradient: torch.Tensor) -> torch.Tensor:
                    raise RuntimeError(CUDNN_RNN_BACKWARD_ERROR)

                output.register_hook(refuse)
            return result

        monkeypatch.setattr(rnn_class, "forward", forward)
    return calls


@pytest.fixture
def cudnn_rnn_rules(monkeypatch: pytest.MonkeyPatch) -> RnnCalls:
    """nn.LSTM and nn.GRU refuse, as cuDNN does, a backward through an RNN run in evaluation mode."""
    return record_rnn_calls(monkeypatch, refuse_eval_backward=True)


@pytest.fixture
def rnn_calls(monkeypatch: pytest.MonkeyPatch) -> RnnCalls:
    return record_rnn_calls(monkeypatch, refuse_eval_backward=False)


def test_the_emulation_refuses_what_cudnn_refuses(cudnn_rnn_rules: RnnCalls):
    lstm = nn.LSTM(4, 4, batch_first=True).eval()
    inputs = torch.rand(1, 3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match=CUDNN_RNN_BACKWARD_ERROR):
        lstm(inputs)[0].sum().backward()
    lstm.train()(inputs)[0].sum().backward()


@pytest.mark.parametrize("recognizer_during_gan", ["frozen", "fine_tune"])
def test_a_gan_step_differentiates_every_rnn_in_training_mode(cudnn_rnn_rules: RnnCalls, recognizer_during_gan: str):
    trainer = tiny_trainer(tiny_config(recognizer_during_gan=recognizer_during_gan))
    trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=EpochSums())  # raises cuDNN's error on an eval-mode RNN

    differentiated = cudnn_rnn_rules.with_gradient()
    assert {type(call.module) for call in differentiated} == {nn.LSTM, nn.GRU}  # the recognizer's, the text's
    assert all(call.training for call in differentiated)
    if recognizer_during_gan == "frozen":
        # A frozen recognizer's BiLSTM runs without dropout; evaluation mode is back after the step.
        assert all(call.dropout == 0.0 for call in differentiated if isinstance(call.module, nn.LSTM))
        recognizer = trainer.models.recognizer
        assert not recognizer.training and not recognizer.lstm.training and recognizer.lstm.dropout == 0.5


def test_the_frozen_recognizer_reads_as_in_evaluation_mode_bit_for_bit():
    config = tiny_config()
    recognizer = build_recognizer(config.recognizer, CHARSET.num_classes).requires_grad_(False)
    # Running statistics unlike a fresh BatchNorm's, so that training-mode statistics would show.
    for _ in range(3):
        recognizer.train()(torch.rand(4, 1, 32, 64) * 0.5)
    images = torch.rand(2, 1, 32, 64)
    # Evaluation mode, with a gradient path and without (the CPU's LSTM takes another kernel without one).
    expected = recognizer.eval()(images.clone().requires_grad_(True))
    with torch.no_grad():
        expected_without_gradient = recognizer(images)
    statistics = {name: buffer.clone() for name, buffer in recognizer.named_buffers()}

    restored = images.clone().requires_grad_(True)
    with frozen_for_input_gradients(recognizer):
        assert recognizer.lstm.training and recognizer.lstm.dropout == 0.0
        reading = recognizer(restored)
        with torch.no_grad():
            reading_without_gradient = recognizer(images)
    reading.logits.sum().backward()

    for got, want in ((reading, expected), (reading_without_gradient, expected_without_gradient)):
        assert torch.equal(got.logits, want.logits) and torch.equal(got.features, want.features)
        assert all(torch.equal(trunk, eval_trunk) for trunk, eval_trunk in zip(got.trunk, want.trunk, strict=True))
    assert restored.grad is not None and restored.grad.abs().sum() > 0  # the gradient reaches the image
    assert all(parameter.grad is None for parameter in recognizer.parameters())  # and no weight
    assert all(torch.equal(buffer, statistics[name]) for name, buffer in recognizer.named_buffers())
    assert not any(module.training for module in recognizer.modules()) and recognizer.lstm.dropout == 0.5


def test_in_a_gan_step_the_frozen_recognizer_reads_as_in_evaluation_mode(monkeypatch: pytest.MonkeyPatch):
    trainer = tiny_trainer(tiny_config())
    recognizer = trainer.models.recognizer
    readings: list[tuple[torch.Tensor, torch.Tensor]] = []
    recognizer.register_forward_hook(lambda module, inputs, output: readings.append((inputs[0], output.logits)))
    batch = tiny_batch()
    trainer.train_step(batch, ctc_factor=1.0, sums=EpochSums())

    restored, logits_in_step = readings[0]
    assert restored.requires_grad  # the generator's output, read with a gradient path
    assert torch.equal(recognizer.eval()(restored.detach().requires_grad_(True)).logits, logits_in_step)


# ------------------------------------------------------------------------------------- no RNN in 16 bits


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_no_rnn_runs_under_autocast_and_the_ctc_gets_fp32_logits(
    rnn_calls: RnnCalls, monkeypatch: pytest.MonkeyPatch, precision: str
):
    ctc_logits: list[torch.Tensor] = []
    ctc_loss = losses.ctc_loss_per_sample

    def recording_ctc(logits: torch.Tensor, *args: object, **kwargs: object) -> losses.CtcLossResult:
        ctc_logits.append(logits)
        return ctc_loss(logits, *args, **kwargs)

    monkeypatch.setattr(losses, "ctc_loss_per_sample", recording_ctc)
    trainer = tiny_trainer(tiny_config(precision))
    trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=EpochSums())

    assert {type(call.module) for call in rnn_calls.calls} == {nn.LSTM, nn.GRU}
    assert not any(call.autocast for call in rnn_calls.calls)
    assert {call.input_dtype for call in rnn_calls.calls} == {torch.float32}
    assert {call.output.dtype for call in rnn_calls.calls} == {torch.float32}
    assert ctc_logits and all(logits.dtype == torch.float32 for logits in ctc_logits)


# --------------------------------------------------------------------------- the discriminator in G's step


def test_the_generators_adversarial_term_computes_no_discriminator_gradient():
    trainer = tiny_trainer(tiny_config())
    backward_passes: list[str] = []
    for name, parameter in trainer.models.discriminator.named_parameters():
        parameter.register_hook(lambda gradient, name=name: backward_passes.append(name))
    trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=EpochSums())

    names = [name for name, _ in trainer.models.discriminator.named_parameters()]
    assert sorted(backward_passes) == sorted(names)  # once each: the discriminator's own loss
    assert all(parameter.requires_grad for parameter in trainer.models.discriminator.parameters())


def test_a_gan_step_reads_the_restored_lines_once():
    """The generator's CTC and the dual-modal discriminator's text come from one reading of the restored lines;
    a second forward for the discriminator's text repeated the whole recognizer (its trunk, the BiLSTM)."""
    trainer = tiny_trainer(tiny_config())
    assert trainer.config.discriminator.mode == "predicted"
    inputs: list[torch.Tensor] = []
    trainer.models.recognizer.register_forward_hook(lambda module, args, output: inputs.append(args[0]))
    batch = tiny_batch()
    trainer.train_step(batch, ctc_factor=1.0, sums=EpochSums())
    assert len(inputs) == 2  # the restored lines once, the clean ones once
    assert sum(torch.equal(images, batch.clean) for images in inputs) == 1


class CountingWrapper(nn.Module):
    """Stands in for DistributedDataParallel: counts the forward passes that would average gradients."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, *args: object) -> torch.Tensor:
        self.calls += 1
        return self.module(*args)


@dataclass(frozen=True)
class CountingGroup(DataParallelGroup):
    wrappers: list[CountingWrapper] = dataclasses.field(default_factory=list)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        self.wrappers.append(CountingWrapper(module))
        return self.wrappers[-1]


def test_only_the_discriminators_own_loss_passes_through_its_data_parallel_wrapper():
    group = CountingGroup()
    trainer = tiny_trainer(tiny_config(), group)
    trainer.train_step(tiny_batch(), ctc_factor=1.0, sums=EpochSums())
    generator_wrapper, discriminator_wrapper = group.wrappers
    assert generator_wrapper.module is trainer.models.generator and generator_wrapper.calls == 1
    assert discriminator_wrapper.module is trainer.models.discriminator
    assert discriminator_wrapper.calls == 2  # real and restored lines; the adversarial term bypasses it


# ----------------------------------------------------------------------------- host and device traffic


@dataclass
class HostToDeviceCopy:
    target: str
    non_blocking: bool


class HostToDeviceCopies(TorchDispatchMode):
    """Records every copy of a CPU tensor to another device (``meta`` stands in for a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[HostToDeviceCopy] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default:
            target = kwargs.get("device")
            if args[0].device.type == "cpu" and target is not None and target.type != "cpu":
                self.copies.append(HostToDeviceCopy(target.type, bool(kwargs.get("non_blocking", False))))
        elif func is torch.ops.aten.copy_.default and args[1].device.type == "cpu" and args[0].device.type != "cpu":
            self.copies.append(HostToDeviceCopy(args[0].device.type, bool(args[2] if len(args) > 2 else False)))
        return func(*args, **kwargs)


META = torch.device("meta")


def test_a_batch_moves_to_the_device_without_a_wait_and_keeps_its_lengths_on_the_host():
    batch = tiny_batch()
    with HostToDeviceCopies() as traffic:
        moved = batch.to(META)
    assert len(traffic.copies) == 5 and all(copy.non_blocking for copy in traffic.copies)
    assert moved.degraded.device == moved.widths.device == moved.label_lengths.device == META
    assert moved.host_widths.device.type == moved.host_label_lengths.device.type == "cpu"
    assert torch.equal(moved.host_widths, batch.widths) and torch.equal(moved.host_label_lengths, batch.label_lengths)


def test_the_loaders_pinning_pins_every_tensor_of_a_batch(monkeypatch: pytest.MonkeyPatch):
    """torch's DataLoader pins a batch through its ``pin_memory`` method; an object without one comes back as it
    went in, unpinned. (This CPU build cannot pin: pinning is recorded instead.)"""
    pinned: list[torch.Tensor] = []

    def record_pinning(tensor: torch.Tensor, *args: object) -> torch.Tensor:
        copy = tensor.clone()
        pinned.append(copy)
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", record_pinning)
    batch = tiny_batch()
    result = loader_pin_memory(batch)

    assert isinstance(result, LineBatch) and result is not batch
    moved = [result.degraded, result.clean, result.widths, result.labels, result.label_lengths]
    assert len(pinned) == 5 and all(any(tensor is copy for copy in pinned) for tensor in moved)
    assert result.host_widths is batch.host_widths and result.texts == batch.texts


def test_the_ctc_refuses_lengths_on_a_device():
    logits = torch.randn(2, 16, CHARSET.num_classes)
    batch = tiny_batch()
    with pytest.raises(ValueError, match="host_widths"):
        losses.ctc_loss_per_sample(
            logits, batch.labels, torch.tensor([16, 14]).to(META), batch.label_lengths, CHARSET.blank_index
        )
    with pytest.raises(ValueError, match="host_label_lengths"):
        losses.ctc_loss_per_sample(
            logits, batch.labels, torch.tensor([16, 14]), batch.label_lengths.to(META), CHARSET.blank_index
        )


class OnDevice(torch.Tensor):
    """Marks lengths as living on the GPU; whatever is computed from them keeps the mark."""


def test_every_ctc_of_a_training_step_gets_the_host_lengths(monkeypatch: pytest.MonkeyPatch):
    """The batch's device lengths are marked: a CTC handed them, or anything computed from them, would copy them
    back from the GPU, waiting for it."""
    lengths_seen: list[torch.Tensor] = []
    ctc_loss = torch.nn.functional.ctc_loss

    def recording_ctc(log_probs, targets, input_lengths, target_lengths, **kwargs):
        lengths_seen.extend([input_lengths, target_lengths])
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "ctc_loss", recording_ctc)
    batch = tiny_batch()
    on_device = dataclasses.replace(
        batch, widths=batch.widths.as_subclass(OnDevice), label_lengths=batch.label_lengths.as_subclass(OnDevice)
    )
    trainer = tiny_trainer(tiny_config(recognizer_during_gan="fine_tune"))
    trainer.train_step(on_device, ctc_factor=1.0, sums=EpochSums())
    assert len(lengths_seen) == 4  # the generator's CTC and the fine-tuning's
    assert not any(isinstance(lengths, OnDevice) for lengths in lengths_seen)
    assert all(lengths.device.type == "cpu" for lengths in lengths_seen)


def test_validation_brings_back_from_the_device_only_the_restored_lines(monkeypatch: pytest.MonkeyPatch):
    """The clean lines are compared as the host already has them: copying them back from the GPU every batch
    made validation wait for it for nothing."""
    moved_to_device = LineBatch.to

    def marked_to(batch: LineBatch, device: torch.device) -> LineBatch:
        moved = moved_to_device(batch, device)
        return dataclasses.replace(
            moved, degraded=moved.degraded.as_subclass(OnDevice), clean=moved.clean.as_subclass(OnDevice)
        )

    compared: list[dict[str, torch.Tensor]] = []
    image_fidelity = scoring_lines._image_fidelity

    def recording_fidelity(clean: torch.Tensor, images: dict[str, torch.Tensor], widths: list[int]) -> list[dict]:
        compared.append({"clean": clean, **images})
        return image_fidelity(clean, images, widths)

    monkeypatch.setattr(LineBatch, "to", marked_to)
    monkeypatch.setattr(scoring_lines, "_image_fidelity", recording_fidelity)
    trainer = tiny_trainer(tiny_config())
    metrics = trainer.validate([tiny_batch()])
    assert metrics.lines == 2 and compared
    for images in compared:
        assert isinstance(images["restored"], OnDevice), "the restored lines come from the device"
        assert not isinstance(images["clean"], OnDevice), "the clean lines are compared as the host has them"


def test_augmentation_draws_reach_the_device_in_queued_copies():
    """The draws are made on the CPU (the same on every device) and cross in a few non-blocking copies; one
    blocking copy per draw would make each step wait for the GPU about seven times."""
    images = torch.rand(4, 1, 32, 96, device=META)
    widths = torch.tensor([96, 80, 64, 40], device=META)
    settings = AugmentationConfig(probability=1.0)
    with HostToDeviceCopies() as traffic:
        augmented = augment_lines(images, widths, settings, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape and augmented.device == META
    assert 0 < len(traffic.copies) <= 3 and all(copy.non_blocking for copy in traffic.copies)


def test_a_resume_keeps_this_devices_optimiser_implementation():
    """A checkpoint saved on a GPU holds fused Adam's settings; resumed on a CPU, the CPU's default Adam runs."""
    saved_on_gpu = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=0.1, fused=True)
    here = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=0.2)
    load_optimizer_state(here, saved_on_gpu.state_dict())
    assert here.param_groups[0]["lr"] == 0.1 and here.param_groups[0]["fused"] is None


def test_the_trainer_takes_fused_adam_on_cuda_only():
    trainer = tiny_trainer(tiny_config())
    assert trainer.generator_optimizer.param_groups[0]["fused"] is None  # on the CPU: torch's default
    optimizer = adam(nn.Linear(2, 2).to(META).parameters(), torch.device("cuda"), lr=0.1)
    assert optimizer.param_groups[0]["fused"] is True


# ------------------------------------------------------------------------------------- settings for a GPU


def test_deterministic_mode_and_cudnn_benchmarking_exclude_each_other():
    with pytest.raises(ValidationError, match="exclude each other"):
        SpeedConfig(deterministic=True, cudnn_benchmark=True)


def test_the_cuda_settings_leave_a_cpu_run_as_it_is(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_cuda(torch.device("cpu"), SpeedConfig(deterministic=True), cudnn_benchmark=False)
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


@pytest.mark.parametrize(
    ("speed", "multiple"),
    [
        ({}, 16),
        ({"compile": True}, 64),
        ({"batch_width_step_px": 40}, 80),
        ({"compile": True, "batch_width_step_px": 32}, 32),
    ],
)
def test_batch_widths_round_to_the_models_multiple_and_the_chosen_step(speed: dict, multiple: int):
    config = TrainingConfig.model_validate(
        {"generator": {"variant": "unet", "channels": [8, 16, 32, 64, 128]}, "speed": speed}
    )
    assert width_multiple(config) == multiple  # the models alone need 16 px: width_downsampling 4, 4 poolings
