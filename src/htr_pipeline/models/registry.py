"""Model variants by name: a small builder function per variant, timm style.

A new variant is its model class, its settings class in :mod:`htr_pipeline.config` (a member of
``GeneratorConfig`` or ``DiscriminatorConfig``, whose tags are the variant names), and its builder here; nothing
else changes. The check at the bottom of this module stops the import when a variant has settings but no
builder, or a builder but no settings.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from htr_pipeline.config import (
    DiscriminatorConfig,
    DualModalDiscriminatorConfig,
    GeneratorConfig,
    PaperLevelsConfig,
    PatchDiscriminatorConfig,
    RecognizerConfig,
    ResidualUnetGeneratorConfig,
    UnetGeneratorConfig,
    tag_of,
    union_tags,
)
from htr_pipeline.models.discriminator import DualModalDiscriminator, PatchDiscriminator
from htr_pipeline.models.generator import NORMALISATIONS, ResidualUnetGenerator, UnetGenerator
from htr_pipeline.models.paper_levels import PaperLevels
from htr_pipeline.models.recognizer import CrnnRecognizer

# -------------------------------------------------------------------------------------------- recognizers


def crnn(config: RecognizerConfig, num_classes: int) -> CrnnRecognizer:
    return CrnnRecognizer(
        num_classes=num_classes,
        conv_channels=list(config.conv_channels),
        width_downsampling=config.width_downsampling,
        lstm_hidden=config.lstm_hidden,
        lstm_layers=config.lstm_layers,
        dropout=config.dropout,
        column_pooling=config.column_pooling,
        ctc_shortcut=config.ctc_shortcut,
    )


RECOGNIZERS: dict[str, Callable[[Any, int], CrnnRecognizer]] = {"crnn": crnn}

# --------------------------------------------------------------------------------------------- generators


def _paper_levels(config: PaperLevelsConfig | None) -> PaperLevels | None:
    return None if config is None else PaperLevels(config.quantile, config.target, config.max_gain)


def unet(config: UnetGeneratorConfig) -> UnetGenerator:
    return UnetGenerator(
        channels=list(config.channels),
        paper_levels=_paper_levels(config.paper_levels),
        normalisation=config.normalisation,
    )


def unet_residual(config: ResidualUnetGeneratorConfig) -> ResidualUnetGenerator:
    return ResidualUnetGenerator(
        channels=list(config.channels),
        residual_blocks=config.residual_blocks,
        paper_levels=_paper_levels(config.paper_levels),
        normalisation=config.normalisation,
    )


GENERATORS: dict[str, Callable[[Any], nn.Module]] = {"unet": unet, "unet_residual": unet_residual}

# ----------------------------------------------------------------------------------------- discriminators


def patch(config: PatchDiscriminatorConfig, num_classes: int) -> PatchDiscriminator:
    return PatchDiscriminator(channels=list(config.channels))


def dual_modal(config: DualModalDiscriminatorConfig, num_classes: int) -> DualModalDiscriminator:
    return DualModalDiscriminator(
        channels=list(config.channels), num_classes=num_classes, text_embedding_dim=config.text_embedding_dim
    )


DISCRIMINATORS: dict[str, Callable[[Any, int], nn.Module]] = {"patch": patch, "dual_modal": dual_modal}

# ------------------------------------------------------------------------------------------------ builders


def _builder(registry: Mapping[str, Callable[..., nn.Module]], variant: str, kind: str) -> Callable[..., nn.Module]:
    if variant not in registry:
        raise KeyError(f"unknown {kind} variant {variant!r}; valid variants: {', '.join(sorted(registry))}")
    return registry[variant]


def build_recognizer(config: RecognizerConfig, num_classes: int) -> CrnnRecognizer:
    """The recognizer of ``config`` over ``num_classes`` outputs (charset size + the CTC blank)."""
    return _builder(RECOGNIZERS, config.variant, "recognizer")(config, num_classes)


def build_generator(config: GeneratorConfig) -> nn.Module:
    return _builder(GENERATORS, config.variant, "generator")(config)


def build_discriminator(config: DiscriminatorConfig, num_classes: int) -> nn.Module:
    """The discriminator of ``config``; ``num_classes`` sizes the text branch of ``dual_modal``."""
    return _builder(DISCRIMINATORS, config.variant, "discriminator")(config, num_classes)


def generator_size_multiple(config: GeneratorConfig) -> int:
    """Image sides a generator accepts are multiples of this: one halving per level below the top."""
    return 2 ** (len(config.channels) - 1)


def check_every_variant_has_a_builder(
    registry: Mapping[str, Callable[..., nn.Module]], tags: tuple[str, ...], kind: str
) -> None:
    """Settings (their tags) and builders name the same variants; raise naming what is missing where."""
    without_builder = sorted(set(tags) - set(registry))
    without_settings = sorted(set(registry) - set(tags))
    if without_builder or without_settings:
        raise TypeError(
            f"{kind} variants out of step: settings without a builder in models/registry.py: {without_builder}; "
            f"builders without settings in config.py: {without_settings}"
        )


check_every_variant_has_a_builder(GENERATORS, union_tags(GeneratorConfig), "generator")
check_every_variant_has_a_builder(DISCRIMINATORS, union_tags(DiscriminatorConfig), "discriminator")
check_every_variant_has_a_builder(RECOGNIZERS, (tag_of(RecognizerConfig),), "recognizer")
check_every_variant_has_a_builder(
    NORMALISATIONS,
    typing.get_args(UnetGeneratorConfig.model_fields["normalisation"].annotation),
    "generator normalisation",
)
