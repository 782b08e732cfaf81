"""Model variants by name, and the builders that make them from the validated config.

The training code calls only these builders, so a new variant is a class here plus a config class in
:mod:`htr_pipeline.config`; nothing else changes.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from htr_pipeline.config import (
    DiscriminatorConfig,
    DualModalDiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminatorConfig,
    RecognizerConfig,
    ResidualUnetGeneratorConfig,
    UnetGeneratorConfig,
)
from htr_pipeline.models.discriminator import DualModalDiscriminator, PatchDiscriminator
from htr_pipeline.models.generator import ResidualUnetGenerator, UnetGenerator
from htr_pipeline.models.recognizer import CrnnRecognizer

RECOGNIZERS: dict[str, type[CrnnRecognizer]] = {"crnn": CrnnRecognizer}
GENERATORS: dict[str, type[nn.Module]] = {"unet": UnetGenerator, "unet_residual": ResidualUnetGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"patch": PatchDiscriminator, "dual_modal": DualModalDiscriminator}

ModelClass = TypeVar("ModelClass")


def _lookup(registry: dict[str, ModelClass], variant: str, kind: str) -> ModelClass:
    if variant not in registry:
        raise KeyError(f"unknown {kind} variant {variant!r}; valid variants: {', '.join(sorted(registry))}")
    return registry[variant]


def build_recognizer(config: RecognizerConfig, num_classes: int) -> CrnnRecognizer:
    """The recognizer of ``config`` over ``num_classes`` outputs (charset size + the CTC blank)."""
    recognizer_class = _lookup(RECOGNIZERS, config.variant, "recognizer")
    return recognizer_class(
        num_classes=num_classes,
        conv_channels=list(config.conv_channels),
        width_downsampling=config.width_downsampling,
        lstm_hidden=config.lstm_hidden,
        lstm_layers=config.lstm_layers,
        dropout=config.dropout,
        column_pooling=config.column_pooling,
        ctc_shortcut=config.ctc_shortcut,
    )


def build_generator(config: GeneratorConfig) -> nn.Module:
    generator_class = _lookup(GENERATORS, config.variant, "generator")
    if isinstance(config, ResidualUnetGeneratorConfig):
        return generator_class(channels=list(config.channels), residual_blocks=config.residual_blocks)
    if isinstance(config, UnetGeneratorConfig):
        return generator_class(channels=list(config.channels))
    raise TypeError(f"no builder for generator config {type(config).__name__}")


def build_discriminator(config: DiscriminatorConfig, num_classes: int) -> nn.Module:
    """The discriminator of ``config``; ``num_classes`` sizes the text branch of ``dual_modal``."""
    discriminator_class = _lookup(DISCRIMINATORS, config.variant, "discriminator")
    if isinstance(config, DualModalDiscriminatorConfig):
        return discriminator_class(
            channels=list(config.channels), num_classes=num_classes, text_embedding_dim=config.text_embedding_dim
        )
    if isinstance(config, PatchDiscriminatorConfig):
        return discriminator_class(channels=list(config.channels))
    raise TypeError(f"no builder for discriminator config {type(config).__name__}")


def generator_size_multiple(config: GeneratorConfig) -> int:
    """Image sides a generator accepts are multiples of this: one halving per level below the top."""
    return 2 ** (len(config.channels) - 1)
