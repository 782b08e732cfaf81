"""Gradient statistics: per-layer norms of a real model, spikes counted and attributed, history across epochs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from htr_pipeline.config import UnetGeneratorConfig
from htr_pipeline.models import build_generator
from htr_pipeline.training.gan_training import clip_with_norm
from htr_pipeline.training.grad_stats import (
    GradientNorms,
    GradientStatistics,
    layer_gradient_norms,
)


@pytest.fixture
def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 2))


def backward_step(model: nn.Module, seed: int, boost_layer: nn.Linear | None = None) -> dict[str, torch.Tensor]:
    """One backward pass on random data; ``boost_layer``'s gradient is multiplied by 1000 (a scripted spike)."""
    model.zero_grad()
    inputs = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
    model(inputs).pow(2).mean().backward()
    if boost_layer is not None:
        boost_layer.weight.grad *= 1000.0
    return layer_gradient_norms(model)


def test_layer_norms_add_up_to_the_norm_clip_grad_norm_sees(model: nn.Sequential):
    layer_norms = backward_step(model, seed=1)
    assert list(layer_norms) == ["0", "2.0", "3"]
    assert all(norm.dim() == 0 and norm.dtype == torch.float32 for norm in layer_norms.values())
    expected_first = torch.linalg.vector_norm(torch.cat([model[0].weight.grad.flatten(), model[0].bias.grad]))
    torch.testing.assert_close(layer_norms["0"], expected_first)
    measured = GradientNorms.of(model).total_norm()
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=float("inf"))
    torch.testing.assert_close(measured, total)


class AtenOperations(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def generator_with_gradients() -> nn.Module:
    torch.manual_seed(0)
    generator = build_generator(UnetGeneratorConfig(variant="unet", channels=[8, 16, 32]))
    nn.init.normal_(generator.to_image.weight)  # it starts at zero, which stops every other layer's gradient
    generator(torch.rand(2, 1, 32, 64)).mean().backward()
    return generator


def test_every_layer_is_measured_in_a_few_fused_operations():
    """One norm per parameter and one per layer was about 270 small kernels a step at the previous system's scale;
    the fused measurement is a handful, whatever the model's size."""
    generator = generator_with_gradients()
    layers = sum(1 for module in generator.modules() if any(True for _ in module.parameters(recurse=False)))
    with AtenOperations() as operations:
        layer_norms = layer_gradient_norms(generator)
    assert len(layer_norms) == layers > 20
    assert operations.count <= 10


@pytest.mark.parametrize("torch_has_clip_with_norm", [True, False], ids=["torch>=2.6", "torch 2.4-2.5"])
def test_clipping_with_the_measured_norm_is_clip_grad_norm_to_the_bit(
    torch_has_clip_with_norm: bool, monkeypatch: pytest.MonkeyPatch
):
    if not torch_has_clip_with_norm:
        monkeypatch.delattr(torch.nn.utils, "clip_grads_with_norm_", raising=False)
    measured, reference = generator_with_gradients(), generator_with_gradients()
    norms = GradientNorms.of(measured)
    clip_with_norm(measured, 0.01, norms.total_norm())
    expected_total = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.01)
    assert torch.equal(norms.total_norm(), expected_total) and expected_total > 0.01  # the clip did act
    for clipped, expected in zip(measured.parameters(), reference.parameters(), strict=True):
        assert torch.equal(clipped.grad, expected.grad)


def test_frozen_layers_are_left_out(model: nn.Sequential):
    model[0].requires_grad_(False)
    assert "0" not in backward_step(model, seed=1)
    with pytest.raises(ValueError, match="backward"):
        GradientNorms.of(nn.Linear(2, 2)).total_norm()


def test_a_scripted_spike_is_counted_and_attributed(model: nn.Sequential):
    statistics = GradientStatistics(spike_factor=10.0)
    for seed in range(6):
        statistics.record(backward_step(model, seed))
    statistics.record(backward_step(model, seed=6, boost_layer=model[2][0]))
    statistics.record(backward_step(model, seed=7))
    summary = statistics.summarise()

    assert summary.steps == 8
    assert summary.spike_steps == 1
    spike = summary.spikes[0]
    assert (spike.step_in_epoch, spike.global_step, spike.layer) == (6, 6, "2.0")
    assert spike.global_norm > 10.0 * spike.median_before
    assert summary.top_layers[0].name == "2.0"
    assert summary.top_layers[0].max_norm == pytest.approx(spike.layer_norm)
    assert summary.max_global_norm == pytest.approx(spike.global_norm)
    assert summary.top_layers[0].median_norm < summary.top_layers[0].max_norm / 10
    assert statistics.summarise() is summary  # a second call neither recomputes nor re-adds history


def test_history_spans_epochs_and_survives_a_resume(model: nn.Sequential):
    statistics = GradientStatistics(spike_factor=10.0)
    for seed in range(5):
        statistics.record(backward_step(model, seed))
    assert statistics.summarise().spike_steps == 0
    statistics.reset_epoch()

    resumed = GradientStatistics(spike_factor=10.0)
    resumed.load_state_dict(statistics.state_dict())
    for stats in (statistics, resumed):  # the first step of epoch 2 is judged against epoch 1's median
        stats.record(backward_step(model, seed=9, boost_layer=model[3]))
    original, continued = statistics.summarise(), resumed.summarise()
    assert original == continued
    assert continued.spike_steps == 1
    assert (continued.spikes[0].step_in_epoch, continued.spikes[0].global_step) == (0, 5)
    assert continued.spikes[0].layer == "3"


def test_non_finite_norms_are_listed_apart_and_kept_out_of_the_history(model: nn.Sequential):
    statistics = GradientStatistics(spike_factor=10.0)
    statistics.record(backward_step(model, seed=0))
    overflowed = backward_step(model, seed=1)
    overflowed["3"] = torch.tensor(float("inf"))
    statistics.record(overflowed)
    summary = statistics.summarise()
    assert (summary.non_finite_steps, summary.spike_steps) == (1, 0)
    assert (summary.non_finite[0].step_in_epoch, summary.non_finite[0].layer) == (1, "3")
    assert summary.max_global_norm == pytest.approx(summary.mean_global_norm)  # the finite step only
    assert statistics.state_dict() == {"global_norm_history": [summary.mean_global_norm], "steps_recorded": 2}


def test_state_is_taken_only_at_epoch_end(model: nn.Sequential):
    statistics = GradientStatistics(spike_factor=10.0)
    statistics.record(backward_step(model, seed=0))
    with pytest.raises(RuntimeError, match="summarise"):
        statistics.state_dict()
    statistics.summarise()
    with pytest.raises(RuntimeError, match="reset_epoch"):
        statistics.record(backward_step(model, seed=1))
    assert statistics.state_dict()["steps_recorded"] == 1
