"""Per-layer gradient norms, and spikes attributed to the layer that caused them.

The previous system saw gradient norms up to 7,494 against a mean of ~28 and could not tell which layer produced
them.
Here every step's per-layer norms are measured in a few fused operations and stay on the device (no host
synchronisation in the training step); at epoch end they cross to the CPU once, and each spike is reported with
the layer that had the largest norm at that step.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

ROOT_LAYER_NAME = "<root>"
"""Layer name of parameters registered on the model itself rather than on a submodule."""
TOP_LAYER_COUNT = 5


def layer_gradient_norms(model: nn.Module) -> dict[str, Tensor]:
    """L2 norm of each layer's parameter gradients, keyed by the owning module's qualified name.

    Values are 0-d fp32 tensors on the gradients' device. Parameters without a gradient are skipped, and a
    parameter shared by two modules counts once (for the first), as in ``clip_grad_norm_``.
    """
    return GradientNorms.of(model).layer_norms


@dataclass(frozen=True)
class GradientNorms:
    """One model's gradient norms after a backward, in a handful of fused operations whatever its size (one
    ``vector_norm`` per parameter and per layer would be hundreds of small kernels per step)."""

    parameter_norms: Tensor
    """(parameters with a gradient,) norm of each, in ``model.parameters()`` order: what ``clip_grad_norm_``
    stacks before it takes the global norm."""
    layer_norms: dict[str, Tensor]
    """0-d norm of each layer's gradients (the norm of its parameters' norms), by qualified module name."""

    @classmethod
    def of(cls, model: nn.Module) -> GradientNorms:
        layer_names: list[str] = []
        layer_sizes: list[int] = []
        gradients: list[Tensor] = []
        counted: set[int] = set()
        # Each module's own parameters, module after module, is the order of model.parameters().
        for name, module in model.named_modules():
            layer_gradients = []
            for parameter in module.parameters(recurse=False):
                if parameter.grad is not None and id(parameter) not in counted:
                    counted.add(id(parameter))
                    layer_gradients.append(parameter.grad)
            if layer_gradients:
                layer_names.append(name or ROOT_LAYER_NAME)
                layer_sizes.append(len(layer_gradients))
                gradients += layer_gradients
        if not gradients:
            return cls(torch.zeros(0), {})
        parameter_norms = torch.stack(torch._foreach_norm(gradients))
        layer_norms = torch._foreach_norm(list(parameter_norms.split(layer_sizes)))
        return cls(parameter_norms, dict(zip(layer_names, layer_norms, strict=True)))

    def total_norm(self) -> Tensor:
        """The global norm, computed as ``clip_grad_norm_`` computes it (clipping with it changes no bit)."""
        if not self.layer_norms:
            raise ValueError("no parameter has a gradient: measure norms after backward()")
        return torch.linalg.vector_norm(self.parameter_norms)


@dataclass(frozen=True)
class LayerGradientSummary:
    name: str
    max_norm: float
    median_norm: float


@dataclass(frozen=True)
class GradientSpike:
    step_in_epoch: int
    """0-based index of the step within its epoch."""
    global_step: int
    """0-based index of the step over the whole run (resumes included)."""
    global_norm: float
    median_before: float | None
    """Median global norm of every earlier step of the run; None for the very first step."""
    layer: str
    """The layer with the largest norm at this step (a non-finite norm counts as the largest)."""
    layer_norm: float


@dataclass(frozen=True)
class GradientSummary:
    steps: int
    mean_global_norm: float
    """Over the steps with a finite global norm (nan if there is none)."""
    max_global_norm: float
    """Over the steps with a finite global norm (nan if there is none)."""
    non_finite_steps: int
    """Steps with an infinite or nan global norm (fp16 loss-scale overflows look like this); not spikes."""
    top_layers: list[LayerGradientSummary]
    """The layers with the largest maximum norm this epoch, largest first."""
    spike_steps: int
    spikes: list[GradientSpike]
    non_finite: list[GradientSpike]
    """Every non-finite step, attributed like a spike (the layer is one with a non-finite norm)."""
    global_norms: list[float] = field(default_factory=list)
    """Every step's global norm before clipping, in order, to 4 significant digits (what the gradient audit
    plots per step and counts the clipped steps of); taken from the epoch's one copy to the host."""


class GradientStatistics:
    """Collects per-layer gradient norms each step; at epoch end, summarises them and finds spikes.

    A step is a spike when its global norm exceeds ``spike_factor`` times the median global norm of every
    earlier step of the run, earlier epochs included. The history of global norms is kept across epochs (and in
    :meth:`state_dict`) so the first step of an epoch is judged too. Steps with a non-finite norm are listed
    apart and kept out of the history: with fp16 they are the loss scaler's routine overflows, not spikes.
    Call :meth:`summarise` at epoch end, then :meth:`reset_epoch` before the next epoch's first :meth:`record`.
    """

    def __init__(self, spike_factor: float):
        if spike_factor <= 0:
            raise ValueError(f"spike_factor must be > 0, got {spike_factor}")
        self.spike_factor = spike_factor
        self._history: list[float] = []
        self._history_median = RunningMedian()
        self._steps_before_epoch = 0
        self._layer_names: list[str] = []
        self._epoch_rows: list[Tensor] = []
        self._summary: GradientSummary | None = None

    def record(self, layer_norms: dict[str, Tensor]) -> None:
        """Keep one step's layer norms on their device; a layer absent at this step counts as norm 0."""
        if self._summary is not None:
            raise RuntimeError("this epoch was already summarised; call reset_epoch() before recording more steps")
        if not layer_norms:
            raise ValueError("no layer has a gradient: record norms after backward()")
        for name in layer_norms:
            if name not in self._layer_names:
                self._layer_names.append(name)
        zero = torch.zeros((), device=next(iter(layer_norms.values())).device)
        row = [layer_norms.get(name, zero).detach().float() for name in self._layer_names]
        self._epoch_rows.append(torch.stack(row))

    def summarise(self) -> GradientSummary:
        """This epoch's statistics; adds its global norms to the run's history (once, however often called)."""
        if self._summary is not None:
            return self._summary
        if not self._epoch_rows:
            raise ValueError("no steps were recorded this epoch")
        # layer_norms: (steps, layers); layers that appeared mid-epoch are 0 in earlier steps
        layer_norms = torch.nn.utils.rnn.pad_sequence(self._epoch_rows, batch_first=True, padding_value=0.0).cpu()
        global_norms = torch.linalg.vector_norm(layer_norms, dim=1)
        spikes, non_finite = self._find_spikes(global_norms.tolist(), layer_norms)
        finite_norms = global_norms[torch.isfinite(global_norms)]
        self._summary = GradientSummary(
            steps=len(global_norms),
            mean_global_norm=finite_norms.mean().item() if len(finite_norms) else math.nan,
            max_global_norm=finite_norms.max().item() if len(finite_norms) else math.nan,
            non_finite_steps=len(non_finite),
            top_layers=self._top_layers(layer_norms),
            spike_steps=len(spikes),
            spikes=spikes,
            non_finite=non_finite,
            global_norms=[float(f"{norm:.4g}") for norm in global_norms.tolist()],
        )
        return self._summary

    def reset_epoch(self) -> None:
        """Start a new epoch; an epoch not yet summarised is summarised first, so the history stays complete."""
        if self._epoch_rows:
            self._steps_before_epoch += self.summarise().steps
        self._layer_names = []
        self._epoch_rows = []
        self._summary = None

    def state_dict(self) -> dict[str, Any]:
        """The run's history of global norms as plain floats (call after summarise at epoch end)."""
        if self._epoch_rows and self._summary is None:
            raise RuntimeError("steps of this epoch are not summarised yet; call summarise() before state_dict()")
        steps_recorded = self._steps_before_epoch + (self._summary.steps if self._summary is not None else 0)
        return {"global_norm_history": list(self._history), "steps_recorded": steps_recorded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._history = [float(norm) for norm in state["global_norm_history"]]
        self._history_median = RunningMedian()
        for norm in self._history:
            self._history_median.add(norm)
        self._steps_before_epoch = int(state["steps_recorded"])
        self._layer_names = []
        self._epoch_rows = []
        self._summary = None

    def _find_spikes(
        self, global_norms: list[float], layer_norms: Tensor
    ) -> tuple[list[GradientSpike], list[GradientSpike]]:
        """Spikes and non-finite steps of this epoch; adds the finite norms to the run's history in order."""
        # layer_norms: (steps, layers) on the CPU
        spikes, non_finite = [], []
        for step, global_norm in enumerate(global_norms):
            median_before = self._history_median.median()
            if not math.isfinite(global_norm):
                non_finite.append(self._attribute(step, global_norm, median_before, layer_norms))
                continue  # an infinite norm in the history would make every later median meaningless
            if median_before is not None and global_norm > self.spike_factor * median_before:
                spikes.append(self._attribute(step, global_norm, median_before, layer_norms))
            self._history.append(global_norm)
            self._history_median.add(global_norm)
        return spikes, non_finite

    def _attribute(
        self, step: int, global_norm: float, median_before: float | None, layer_norms: Tensor
    ) -> GradientSpike:
        """The step with the layer of largest norm at that step (nan counts as largest)."""
        layer_index = int(layer_norms[step].nan_to_num(nan=math.inf).argmax())
        return GradientSpike(
            step_in_epoch=step,
            global_step=self._steps_before_epoch + step,
            global_norm=global_norm,
            median_before=median_before,
            layer=self._layer_names[layer_index],
            layer_norm=float(layer_norms[step, layer_index]),
        )

    def _top_layers(self, layer_norms: Tensor) -> list[LayerGradientSummary]:
        # layer_norms: (steps, layers) on the CPU
        max_norms = layer_norms.nan_to_num(nan=math.inf).max(dim=0).values
        median_norms = layer_norms.nanmedian(dim=0).values
        ranked = torch.argsort(max_norms, descending=True, stable=True)[:TOP_LAYER_COUNT].tolist()
        return [
            LayerGradientSummary(self._layer_names[index], float(max_norms[index]), float(median_norms[index]))
            for index in ranked
        ]


class RunningMedian:
    """Median of a growing list of numbers in O(log n) per insertion: two heaps split at the median."""

    def __init__(self) -> None:
        self._lower_half: list[float] = []  # max-heap, stored negated
        self._upper_half: list[float] = []  # min-heap

    def add(self, value: float) -> None:
        if not self._lower_half or value <= -self._lower_half[0]:
            heapq.heappush(self._lower_half, -value)
        else:
            heapq.heappush(self._upper_half, value)
        if len(self._lower_half) > len(self._upper_half) + 1:
            heapq.heappush(self._upper_half, -heapq.heappop(self._lower_half))
        elif len(self._upper_half) > len(self._lower_half):
            heapq.heappush(self._lower_half, -heapq.heappop(self._upper_half))

    def median(self) -> float | None:
        if not self._lower_half:
            return None
        if len(self._lower_half) > len(self._upper_half):
            return -self._lower_half[0]
        return (-self._lower_half[0] + self._upper_half[0]) / 2.0
