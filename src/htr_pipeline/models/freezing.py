"""A frozen model that gradients still pass through: the frozen recognizer of the GAN's CTC and feature losses,
and the discriminator inside the generator's adversarial term.

Frozen means frozen in every sense: no parameter gets a gradient, BatchNorm keeps its running statistics,
dropout is off, and the output is the output of evaluation mode, bit for bit. Evaluation mode alone does not do
it on a GPU: cuDNN differentiates an RNN only in training mode ("cudnn RNN backward can only be called in training
mode", pytorch/pytorch#5878), so the generator's first step would crash. Inside :func:`frozen_for_input_gradients`
every module is in evaluation mode except the RNNs, which run in training mode with their inter-layer dropout at
0: what they compute is then what evaluation mode computes, and cuDNN can differentiate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def parameters_frozen(module: nn.Module) -> Iterator[nn.Module]:
    """No parameter of ``module`` gets a gradient from what runs inside (modes unchanged); restored on exit.

    The gradient still reaches the inputs. Nothing is computed (nor, under data parallelism, averaged) for
    weights that this backward must not update.
    """
    parameters = list(module.parameters())
    required = [parameter.requires_grad for parameter in parameters]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield module
    finally:
        for parameter, requires_grad in zip(parameters, required, strict=True):
            parameter.requires_grad_(requires_grad)


@contextmanager
def frozen_for_input_gradients(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` frozen (evaluation-mode output, no parameter gradient) in a mode a GPU can backpropagate
    through to its input; every mode, dropout and ``requires_grad`` is restored on exit."""
    submodules = list(module.modules())
    modes = [submodule.training for submodule in submodules]
    recurrent = [submodule for submodule in submodules if isinstance(submodule, nn.RNNBase)]
    dropouts = [rnn.dropout for rnn in recurrent]
    module.eval()
    for rnn in recurrent:
        # Training mode for cuDNN's backward; no dropout between layers, so it computes what evaluation mode does.
        rnn.train()
        rnn.dropout = 0.0
    try:
        with parameters_frozen(module):
            yield module
    finally:
        for rnn, dropout in zip(recurrent, dropouts, strict=True):
            rnn.dropout = dropout
        for submodule, training in zip(submodules, modes, strict=True):
            submodule.training = training
