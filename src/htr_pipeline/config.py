"""The one validated schema for every parameters file.

Parameters live under seven top-level keys, one per pipeline: ``data``, ``training``, ``evaluation``,
``diagnostics``, ``inference``, ``comparison`` and ``sweep``. Every model forbids unknown keys, so a misspelt or
misplaced key is an error that names its path and the closest valid key, never a silently ignored setting; every
checkpoint file a setting names must exist. What a run logs is ``model_dump`` of the validated
:class:`ProjectConfig`: the effective config, defaults included.

Model variants are discriminated unions on ``variant`` (:data:`GeneratorConfig`, :data:`DiscriminatorConfig`);
:mod:`htr_pipeline.models.registry` has a builder for each tag and checks that the two agree. Data sources are
validated by the settings class of their ``kind`` (:class:`SourceSettings`), which lives beside its reader in
:mod:`htr_pipeline.data.sources` and is listed in its registry. Checkpoint names come from
:mod:`htr_pipeline.checkpoints`.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from htr_pipeline.checkpoint_names import CheckpointName, named_file
from htr_pipeline.metric_names import PAGE_MONITOR, Monitor

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
"""The splits every manifest row belongs to; the schema names them in ``data.split``, the data modules use them."""

PILLOW_PIXEL_LIMIT = 178_956_970
"""Pillow refuses to open an image above 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` (its default), and this project
never changes that global, so ``data.max_image_pixels`` cannot promise more."""


class ConfigError(ValueError):
    """The parameters do not match the schema; the message lists every problem by key path."""


class StrictModel(BaseModel):
    # Every float is finite: no setting of this project means anything at inf or nan (``lr_generator: .inf``).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_range(value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    start, end = value
    if not (low <= start <= end <= high):
        raise ValueError(f"expected [min, max] with {low} <= min <= max <= {high}, got [{start}, {end}]")
    return value


UnitRange = Annotated[tuple[float, float], Field(description="[min, max], each in [0, 1]")]


# ---------------------------------------------------------------------------------------------- data sources


class SplitFractions(StrictModel):
    """Share of each split for sources that do not bring their own ``splits.tsv``."""

    train: float = Field(0.8, ge=0.0, le=1.0)
    valid: float = Field(0.1, ge=0.0, le=1.0)
    test: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + valid + test must be 1.0, got {total:.6f}")
        return self


def _compiles(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a regular expression Python reads: {error}") from None
    return pattern


RegexPattern = Annotated[str | None, AfterValidator(_compiles)]
"""A regular expression setting, compiled when validated, so a bad one fails before any work starts."""


class SourceSettings(StrictModel):
    """What the settings of every data source have. Each kind's settings class subclasses this in the kind's own
    module of :mod:`htr_pipeline.data.sources`, beside its reader, and has one line in
    :mod:`htr_pipeline.data.sources.registry`; a ``data.sources`` entry is validated by the class its ``kind``
    names."""

    kind: str
    """Which reader reads the source: a ``Literal`` of one value in each kind's settings class."""
    name: str
    """Prefix of sample ids and image folders; unique per source. Each kind defaults it to the kind."""

    @classmethod
    def kind_name(cls) -> str:
        """The kind a settings class is for: the one value its ``kind`` allows."""
        return typing.get_args(cls.model_fields["kind"].annotation)[0]


SOURCE_REGISTRY = "htr_pipeline.data.sources.registry"
"""The module that lists the source kinds, one line each. The schema imports it when it first validates a source,
not when it is imported itself: a kind's module holds its reader too, which needs the data layer above this module
(and torch), while the schema must import in a fraction of a second."""


def source_settings_by_kind() -> dict[str, type[SourceSettings]]:
    """The settings class of every registered source kind, by kind."""
    return importlib.import_module(SOURCE_REGISTRY).source_settings_by_kind()


def _validate_source(value: Any) -> Any:
    """A ``data.sources`` entry as the settings class its ``kind`` names; its errors keep their key paths."""
    if not isinstance(value, Mapping):
        return value  # a settings object as it is; anything else fails as "expected a mapping"
    settings = source_settings_by_kind()
    known = ", ".join(sorted(settings))
    if "kind" not in value:
        raise PydanticCustomError("missing_source_kind", "a source needs a kind: one of {known}", {"known": known})
    kind = value["kind"]
    if not isinstance(kind, str) or kind not in settings:
        raise PydanticCustomError(
            "unknown_source_kind",
            "unknown source kind '{kind}'; the known kinds are {known}",
            {"kind": str(kind), "known": known},
        )
    return settings[kind].model_validate(dict(value))


SourceEntry = Annotated[SerializeAsAny[SourceSettings], BeforeValidator(_validate_source)]
"""One entry of ``data.sources``: validated, and logged with every key, as the settings of its kind."""


# ------------------------------------------------------------------------------------------- degradations


class DegradationSetting(StrictModel):
    """One kind of degradation: applied with ``probability``; its strength drawn from ``strength`` [min, max]."""

    probability: float = Field(ge=0.0, le=1.0)
    strength: UnitRange

    @model_validator(mode="after")
    def _strength_in_unit_range(self) -> DegradationSetting:
        check_range(self.strength, 0.0, 1.0)
        return self


class Degradations(StrictModel):
    """Seeded document degradations, applied in this order to sources that have clean images only."""

    paper_texture: DegradationSetting = DegradationSetting(probability=0.9, strength=(0.2, 0.7))
    uneven_lighting: DegradationSetting = DegradationSetting(probability=0.6, strength=(0.2, 0.7))
    stains: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.2, 0.8))
    bleed_through: DegradationSetting = DegradationSetting(probability=0.4, strength=(0.2, 0.6))
    ruled_lines: DegradationSetting = DegradationSetting(probability=0.2, strength=(0.2, 0.6))
    ink_fading: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.2, 0.6))
    blur: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.1, 0.5))
    noise: DegradationSetting = DegradationSetting(probability=0.7, strength=(0.1, 0.5))
    jpeg: DegradationSetting = DegradationSetting(probability=0.3, strength=(0.2, 0.7))


# -------------------------------------------------------------------------------------------- real paper


def repeated_names(names: list[str]) -> list[str]:
    """The names that occur more than once, in the order in which they first repeat."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def _regular_expression(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression ({error})") from None
    return pattern


class PaperFolder(StrictModel):
    """Scanned pages whose paper samples with a synthesised degraded image are composed on."""

    kind: Literal["page_pairs", "page_scans"]
    """``page_pairs``: scans ``images/<id>.*`` with a binarization ground truth ``gt/<id>_gt.*`` (or
    ``gt/<id>.*``, 0 = ink), as DIBCO ships them: the paper is the scan where the ground truth has no ink;
    ``page_scans``: scans without ground truth (in ``images/``, else in the folder itself): the ink is estimated."""
    name: str
    """Prefix of the page ids the manifest records (``<name>:<file stem>``); unique per folder."""
    path: Path
    include: str | None = None
    """Regular expression searched in each scan's file name: only matching pages are used; null: every page."""
    group_pattern: str | None = None
    """Regular expression with a named group ``group``, searched in each scan's file name, giving the document a
    page belongs to: a document's pages share a split. null: each page is its own group."""
    scale: float = Field(1.0, gt=0.0, le=4.0)
    """Working pixels per scanned pixel: the scale at which the model meets such scans. 1.0 for pages restored at
    their own size (inference and the real test restore pages so); ``data.image_height`` / the height of a text
    line for scans whose lines are cut out and normalised."""

    @field_validator("include", "group_pattern")
    @classmethod
    def _is_a_regular_expression(cls, pattern: str | None) -> str | None:
        return _regular_expression(pattern)


class RealPaperConfig(StrictModel):
    """Compose samples with a synthesised degraded image on real paper: patches of pages from ``folders``, each
    split's from pages of its own (whole documents), with bleed-through of real ink and uneven ink fading; the
    ``data.degradations`` follow on top, except ``paper_texture``, ``bleed_through`` and ``ink_fading``, which this
    composition replaces for the samples it composes."""

    folders: list[PaperFolder] = Field(min_length=1)
    probability: float = Field(1.0, ge=0.0, le=1.0)
    """Share of those samples composed on real paper; the others keep the procedural paper of ``data.degradations``."""
    ink_fading: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.2, 0.6))
    """The ink of the line fades unevenly before it meets the paper (strength: the most it fades, x 0.85)."""
    bleed_through: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.2, 0.6))
    """Real ink of another part of a page of the same split shows through, mirrored and blurred (strength: its
    opacity and blur)."""
    paper_grain: DegradationSetting = DegradationSetting(probability=0.5, strength=(0.2, 1.0))
    """Textured paper (leather-like grain, laid or ruled board) on top of the page's paper before the ink meets it:
    the paper's own fine texture amplified, and a network of thin dark creases, stretched in a random direction
    (strength: how much of each). The model then meets faint dark structure that is not ink; without it, a model
    trained on smooth paper turns the grain of a textured page into specks of ink."""
    clean_ink: Literal["drawn", "page"] = "page"
    """The ink of a composed sample's clean target. ``page``: as dark as the composition made it (the line's ink
    on white paper at the page's ink darkness, unfaded), so the generator learns to remove paper, fading,
    bleed-through and the degradations, and not to darken ink beyond the page's own. ``drawn``: the line as drawn
    (or as scanned, paper removed), so the generator learns to darken the page's lighter ink to it, and, at some
    GAN seeds, whatever is darker than a real page's paper (README: "Ink as dark as the page's")."""

    @field_validator("folders", mode="before")
    @classmethod
    def _folders_are_given(cls, folders: Any) -> Any:
        if isinstance(folders, list) and not folders:
            raise ValueError(
                "no paper folder is configured: list your scans under data.real_paper.folders in "
                "conf/local/parameters.yml (conf/local.example/real_paper.yml shows how), or set data.real_paper: null"
            )
        return folders

    @model_validator(mode="after")
    def _folder_names_are_unique(self) -> RealPaperConfig:
        repeated = sorted(repeated_names([folder.name for folder in self.folders]))
        if repeated:
            raise ValueError(f"folders named {', '.join(repeated)} more than once; give each folder a distinct name")
        return self


# ---------------------------------------------------------------------------------------------------- data


class DataConfig(StrictModel):
    """Parameters of the ``data_ingestion`` pipeline."""

    seed: int = 42
    sources: list[SourceEntry] = Field(min_length=1)
    image_height: int = Field(64, ge=16, le=512)
    """Height of every normalised line image, in pixels."""
    max_width: int = Field(512, ge=16)
    """Widest normalised line, in pixels; wider lines are squeezed horizontally (recorded as width_scale)."""
    max_label_length: int = Field(128, ge=1)
    """Longest transcription, in symbols; longer lines are rejected."""
    min_source_height_px: int = Field(8, ge=1)
    min_source_width_px: int = Field(8, ge=1)
    split_fractions: SplitFractions = SplitFractions()
    max_reject_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """The run fails when more than this share of the inputs is rejected."""
    degradations: Degradations = Degradations()
    real_paper: RealPaperConfig | None = None
    """null: synthesised degraded images get the procedural paper of ``degradations``; else real paper from your
    scans (README, "Real paper")."""
    clean_scans: Literal["as_scanned", "paper_removed"] = "as_scanned"
    """Clean images read from scans (line_folder, xml_pages, parquet_lines) whose degraded image is synthesised:
    ``as_scanned`` keeps them as they are, their own paper included; ``paper_removed`` divides out their paper
    first (ink on white, as a synthetic line), so the paper under a degraded line is the synthesis's alone."""
    num_workers: int = Field(2, ge=1)
    """Processes used to render, load and degrade images; results do not depend on it."""
    max_image_pixels: int = Field(100_000_000, ge=1, le=PILLOW_PIXEL_LIMIT)
    """An image with more pixels (read from its header, before decoding) is rejected as ``image_too_large``.
    100 M holds a 600 dpi A3 page (about 7,000 x 9,900 = 70 M) with room to spare, while one decoded image stays
    near 100 MB in grey (300 MB in RGB) per worker; a 1-bit PNG of a few kB can claim far more. At most Pillow's
    own limit, above which it refuses to open a file at all."""

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_are_given(cls, sources: Any) -> Any:
        if isinstance(sources, list) and not sources:
            raise ValueError(
                "no source is configured: list your line sets under data.sources in conf/local/parameters.yml "
                "(conf/local.example/ shows how; a preset such as --env real_lines holds the recipe, not the data)"
            )
        return sources

    @model_validator(mode="after")
    def _source_names_are_unique(self) -> DataConfig:
        repeated = repeated_names([source.name for source in self.sources])
        if repeated:
            raise ValueError(f"two sources are named '{repeated[0]}'; give each source a distinct `name`")
        return self


# -------------------------------------------------------------------------------------------------- training

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = typing.get_args(Precision)


class RecognizerConfig(StrictModel):
    """The CTC recognizer ``crnn``: conv blocks, a BiLSTM, a linear layer over the charset."""

    variant: Literal["crnn"] = "crnn"
    conv_channels: list[int] = Field([16, 32, 64, 96], min_length=1)
    """Output channels of each conv block; every block halves the height."""
    width_downsampling: int = 4
    """The conv trunk divides the width by this (a power of two): a line W px wide gives W / width_downsampling
    CTC time steps. Data checks and diagnostics use this same value."""
    lstm_hidden: int = Field(128, ge=1)
    lstm_layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    column_pooling: Literal["max", "mean"] = "max"
    """How the conv trunk's rows become one feature vector per column: ``max`` (HTR-best-practices) or ``mean``."""
    ctc_shortcut: bool = True
    """An auxiliary CTC head on the trunk's columns (Retsinas et al. 2022), trained with weight
    ``recognizer_pretraining.shortcut_weight``; readings never come from it."""

    @model_validator(mode="after")
    def _downsampling_fits_the_blocks(self) -> RecognizerConfig:
        factor = self.width_downsampling
        if factor < 1 or factor & (factor - 1) or factor > 2 ** len(self.conv_channels):
            raise ValueError(
                f"width_downsampling must be a power of two <= 2 ** len(conv_channels) = "
                f"{2 ** len(self.conv_channels)}, got {factor}"
            )
        return self


class PaperLevelsConfig(StrictModel):
    """Each image the generator sees (a line, or a window of a page) multiplied by one gain first, so that its paper
    is at ``target``: the paper of a dark scan is then as bright as the paper the model learned on, and the grain
    of dark, textured paper is not read as ink (``htr_pipeline.models.paper_levels``)."""

    quantile: float = Field(0.9, ge=0.5, lt=1.0)
    """The image's paper brightness is this quantile of its pixels (columns of pure white, a batch's padding, left
    out): most of a line or a page is paper."""
    target: float = Field(0.96, gt=0.0, le=1.0)
    """Brightness the paper is brought to (1 = white)."""
    max_gain: float = Field(4.0, ge=1.0)
    """The most an image is brightened; it is never darkened."""


class _GeneratorSettings(StrictModel):
    paper_levels: PaperLevelsConfig | None = PaperLevelsConfig()
    """Bring each input's paper to one brightness before the generator sees it; null: the input as it is (every
    checkpoint written before this setting existed restores that way, as it was trained)."""
    normalisation: Literal["instance", "batch", "batch_instance"] = "instance"
    """How features are normalised (:data:`htr_pipeline.models.generator.NORMALISATIONS`): ``instance``, each image
    by its own statistics; ``batch``, by the training batch's and, when restoring, those learnt in training, so a
    window of blank paper is not normalised as if its grain were ink (README: Blank paper); ``batch_instance``,
    both, mixed per channel by a learnt gate. The default is what every checkpoint written before this setting
    existed was trained with."""


def trained_before_paper_levels(generator: Mapping[str, Any]) -> dict[str, Any]:
    """Generator settings stored before ``paper_levels`` existed (checkpoint format 1, older MLflow models), as their
    generator was trained: without levels where the key is missing (the schema's default would level the inputs)."""
    return {"paper_levels": None, **generator}


class UnetGeneratorConfig(_GeneratorSettings):
    """Encoder-decoder with skip connections, sigmoid output (the GAN-HTR / DE-GAN line)."""

    variant: Literal["unet"]
    channels: list[int] = Field(min_length=2)
    """Channels of each encoder level; each level halves height and width."""


class ResidualUnetGeneratorConfig(_GeneratorSettings):
    """U-Net with residual blocks and attention gates on the skip connections."""

    variant: Literal["unet_residual"]
    channels: list[int] = Field(min_length=2)
    residual_blocks: int = Field(1, ge=1)
    """Residual blocks per level."""


GeneratorConfig = Annotated[UnetGeneratorConfig | ResidualUnetGeneratorConfig, Field(discriminator="variant")]
"""Every generator variant's settings; :data:`htr_pipeline.models.registry.GENERATORS` has a builder for each
(checked when the registry is imported)."""


class PatchDiscriminatorConfig(StrictModel):
    """Conditional PatchGAN on the degraded input stacked with the candidate."""

    variant: Literal["patch"]
    channels: list[int] = Field(min_length=1)


class DualModalDiscriminatorConfig(StrictModel):
    """The patch trunk fused with a text branch embedding a symbol sequence."""

    variant: Literal["dual_modal"]
    channels: list[int] = Field(min_length=1)
    text_embedding_dim: int = Field(32, ge=1)
    mode: Literal["predicted", "ground_truth"] = "predicted"
    """``predicted``: the recognizer's greedy reading of the candidate; ``ground_truth``: the true text."""


DiscriminatorConfig = Annotated[PatchDiscriminatorConfig | DualModalDiscriminatorConfig, Field(discriminator="variant")]
"""Every discriminator variant's settings; :data:`htr_pipeline.models.registry.DISCRIMINATORS` builds each."""


class LossWeights(StrictModel):
    pixel: float = Field(100.0, ge=0.0)
    adversarial: float = Field(1.0, ge=0.0)
    ctc: float = Field(1.0, ge=0.0)
    recognition_feature: float = Field(5.0, ge=0.0)
    perceptual: float = Field(0.2, ge=0.0)


class PerceptualConfig(StrictModel):
    extractor: Literal["recognizer", "vgg16", "vgg19"] = "recognizer"
    """``recognizer``: the pre-trained recognizer's conv trunk; VGG only from ``weights_path``."""
    weights_path: Path | None = None
    """A local torchvision VGG state dict; required for vgg16/vgg19, never downloaded."""

    @model_validator(mode="after")
    def _vgg_needs_local_weights(self) -> PerceptualConfig:
        if self.extractor == "recognizer" and self.weights_path is not None:
            raise ValueError("weights_path is only read for extractor vgg16 or vgg19")
        if self.extractor != "recognizer" and self.weights_path is None:
            raise ValueError(f"extractor {self.extractor} needs weights_path: a local file; nothing is downloaded")
        return self


class CtcSchedule(StrictModel):
    """CTC weight multiplier: 0 for ``warmup_epochs``, then a linear ramp to 1 over ``ramp_epochs``."""

    warmup_epochs: int = Field(0, ge=0)
    ramp_epochs: int = Field(0, ge=0)


class LossConfig(StrictModel):
    weights: LossWeights = LossWeights()
    adversarial_kind: Literal["lsgan", "bce"] = "lsgan"
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """Real targets of the discriminator are 1 - label_smoothing."""
    ctc_ceiling: float | None = Field(None, gt=0.0)
    """A per-sample CTC above this is rescaled down to it (its gradient keeps its direction); null = none."""
    ctc_schedule: CtcSchedule = CtcSchedule()
    perceptual: PerceptualConfig = PerceptualConfig()


class AdaptiveBalancingConfig(StrictModel):
    """Steers the CTC weight so that CTC makes up ``target_ctc_share`` of the balanced generator loss."""

    target_ctc_share: float = Field(0.65, gt=0.0, lt=1.0)
    adaptation_rate: float = Field(0.15, gt=0.0, le=1.0)

    @property
    def target_visual_share(self) -> float:
        """The rest of the balanced generator loss: the visual terms' share."""
        return 1.0 - self.target_ctc_share


class EarlyStoppingConfig(StrictModel):
    """Stop when ``training.monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    patience: int = Field(2, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best_weights: bool = True


class OptimizerConfig(StrictModel):
    lr_generator: float = Field(1e-3, gt=0.0)
    lr_discriminator: float = Field(2e-4, gt=0.0)
    betas: tuple[float, float] = (0.5, 0.999)
    cosine_schedule: bool = False
    gradient_clip_norm: float | None = Field(1.0, gt=0.0)
    """Clip the global gradient norm to this at every step of the generator and the discriminator, and of every
    recognizer trained before the GAN (stage 1, the judge, the baselines); fine-tuning the recognizer during the GAN
    (``recognizer_during_gan: fine_tune``) is not clipped. null = no clipping anywhere."""


class AugmentationConfig(StrictModel):
    """Standard HTR augmentation of the lines a recognizer trains on (never of the GAN's pairs)."""

    probability: float = Field(0.5, ge=0.0, le=1.0)
    """Share of training lines augmented; the others are read as they are."""
    rotation_degrees: float = Field(1.5, ge=0.0, le=10.0)
    shear: float = Field(0.3, ge=0.0, le=1.0)
    """Horizontal shear (slant) factor, drawn from [-shear, shear]."""
    scale: float = Field(0.08, ge=0.0, lt=0.5)
    """Relative size change, drawn from [-scale, scale]."""
    elastic_px: float = Field(1.5, ge=0.0, le=8.0)
    """Standard deviation of a smooth random displacement, in pixels (0: none)."""
    morphology_probability: float = Field(0.4, ge=0.0, le=1.0)
    """Share of augmented lines whose strokes are dilated or eroded by one 3 x 3 step (half each)."""
    contrast: float = Field(0.4, ge=0.0, lt=1.0)
    """Ink darkness is multiplied by a factor drawn from [1 - contrast, 1]."""


class RecognizerPretrainingConfig(StrictModel):
    """Stage 1: the recognizer on clean train lines, early-stopped on val CER, then gated by ``max_val_cer``.

    The recipe follows what makes small HTR sets learn (README, "How the recognizer learns real lines"): a step
    schedule with warm-up, the CTC shortcut's auxiliary loss, augmentation, and early stopping that cannot fire on
    the all-blank plateau every CTC model sits on first.
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(3e-3, gt=0.0)
    """Peak learning rate (Adam), reached after ``warmup_steps``."""
    warmup_steps: int = Field(150, ge=0)
    """Optimiser steps of linear warm-up from 0 to ``learning_rate``."""
    schedule: Literal["constant", "cosine"] = "cosine"
    """After warm-up: keep the peak, or decay it along a cosine to 1 % of the peak at the last epoch's end."""
    shortcut_weight: float = Field(0.1, ge=0.0)
    """Weight of the CTC shortcut head's loss (needs ``training.recognizer.ctc_shortcut``)."""
    augmentation: AugmentationConfig | None = AugmentationConfig()
    """null: train on the lines as they are."""
    patience: int = Field(4, ge=1)
    """Epochs without a better val CER before stopping, counted only once the CER is below ``patience_from_cer``
    and ``min_steps`` have run."""
    patience_from_cer: float = Field(0.9, gt=0.0, le=1.0)
    """A CTC recognizer first reads nothing (val CER ~1.0) for hundreds of steps; patience only counts once val
    CER has fallen below this, so early stopping never ends a run on that plateau."""
    min_steps: int = Field(0, ge=0)
    """Optimiser steps that run before early stopping may stop."""
    max_val_cer: float = Field(0.5, gt=0.0)
    """The gate between the stages: a recognizer whose best val CER is above this stops the training node before
    any GAN epoch (also one loaded from ``training.recognizer_checkpoint``)."""


class SpeedConfig(StrictModel):
    """Speed settings that trade nothing in the maths (off by default: they pay on GPUs, where they need a GPU to be
    judged); all of them apply to the GAN stage, ``deterministic`` to both training stages."""

    channels_last: bool = False
    """Generator and discriminator in channels-last memory format (faster convolutions on tensor cores)."""
    compile: bool = False
    """``torch.compile`` the generator and discriminator (in place: checkpoints keep their keys)."""
    cudnn_benchmark: bool = False
    """Let cuDNN time its algorithms per shape (width-bucketed batches repeat shapes); the chosen algorithms
    may differ between runs, so results are no longer bit-identical across runs."""
    batch_width_step_px: int | None = Field(None, ge=1)
    """Batch widths are rounded up to a multiple of this (and of the models' own multiple): fewer distinct shapes
    for cuDNN's autotuning and ``compile``, at the cost of padding. null: the models' multiple (16 px with the
    default models), or 64 px with ``compile``."""
    deterministic: bool = False
    """On CUDA, both training stages run bit-reproducibly: deterministic algorithms only (an operation without
    one stops the run, naming it), cuDNN benchmarking off, cuBLAS's fixed workspace, and the CTC computed on the
    CPU (its CUDA backward adds atomically). Slower. A CPU run is deterministic without it."""

    @model_validator(mode="after")
    def _deterministic_excludes_benchmarking(self) -> SpeedConfig:
        if self.deterministic and self.cudnn_benchmark:
            raise ValueError(
                "deterministic and cudnn_benchmark exclude each other (cuDNN's timing picks algorithms that may "
                "differ between runs); set one of them to false"
            )
        return self


class PageCropsConfig(StrictModel):
    """Train the GAN on random crops of page pairs (no text) beside the text lines."""

    width: int = Field(256, ge=16)
    """Crop width in pixels; the height is the lines' height (``data.image_height``), so crops batch with lines."""
    crops_per_page: int = Field(32, ge=1)
    """Crops cut from each page, at positions drawn once per run from ``training.seed``."""


JUDGE_RECOGNIZER_DEFAULTS: dict[str, Any] = {"conv_channels": [16, 32, 48, 80], "lstm_hidden": 96, "dropout": 0.2}
"""The judge's architecture unless set: narrower than the in-loop default, more dropout; its width downsampling
follows ``training.recognizer``'s, so both read the same padded lines."""


class JudgeConfig(StrictModel):
    """A second recognizer trained on the clean train lines, independent of the one in the GAN's loop: no GAN
    loss ever sees it, so a CER gain it measures cannot come from a generator that learnt to please its own
    recognizer (GAN-HTR, "Enhance to read better", 2022). Evaluation's headline figures are the judge's."""

    seed: int = 1234
    """Must differ from ``training.seed``."""
    recognizer: RecognizerConfig = RecognizerConfig(**JUDGE_RECOGNIZER_DEFAULTS)
    """Must differ from ``training.recognizer``; ``width_downsampling``, unless given, is the in-loop one's."""


ReferenceRecognizerBaseline = Literal["degraded_trained"]


class TrainingConfig(StrictModel):
    """Parameters of the ``training`` pipeline."""

    seed: int = 42
    gan_seed: int | None = None
    """Seed of the GAN stage alone (initial weights, line order, page crops); null: ``seed``. Stage 1 (the
    recognizer and the judge) draws from ``seed``, so runs repeated over GAN seeds (``sweep.seeds``) share it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``cuda`` without a GPU is an error, never a silent CPU run."""
    precision: Precision = "fp32"
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(0, ge=0)
    devices: int = Field(1, ge=1)
    """Data-parallel processes for the GAN stage: one per GPU with ``cuda`` (NCCL), CPU processes otherwise
    (gloo). ``batch_size`` stays the global batch: each process takes its share of every batch."""
    speed: SpeedConfig = SpeedConfig()
    recognizer: RecognizerConfig = RecognizerConfig()
    generator: GeneratorConfig = UnetGeneratorConfig(variant="unet", channels=[16, 32, 64])
    discriminator: DiscriminatorConfig = PatchDiscriminatorConfig(variant="patch", channels=[16, 32, 64])
    recognizer_pretraining: RecognizerPretrainingConfig = RecognizerPretrainingConfig()
    recognizer_checkpoint: Path | None = None
    """Skip stage 1 and load this recognizer (strictly: same charset and shapes); the gate still applies."""
    judge: JudgeConfig | None = JudgeConfig()
    """The independent recognizer evaluation reads with; null: none (evaluation then reports the in-loop
    recognizer alone, and says so)."""
    baselines: list[ReferenceRecognizerBaseline] = []
    """``degraded_trained``: also train a recognizer (``training.recognizer`` settings) on the degraded train
    lines; evaluation scores it on the degraded test lines beside the restored figures, answering whether
    restoration beats training on degraded data."""
    recognizer_during_gan: Literal["frozen", "fine_tune"] = "frozen"
    """``fine_tune`` also trains the recognizer on clean lines each step."""
    optimizer: OptimizerConfig = OptimizerConfig()
    losses: LossConfig = LossConfig()
    adaptive_balancing: AdaptiveBalancingConfig | None = None
    """null = fixed loss weights."""
    monitor: Monitor = "val/combined"
    """The metric that picks the best model (and drives early stopping); its direction is fixed by the metric."""
    combined_cer_weight: float = Field(50.0, ge=0.0)
    """val/combined = val/psnr - combined_cer_weight x val/cer."""
    early_stopping: EarlyStoppingConfig | None = EarlyStoppingConfig()
    """null = train all epochs."""
    gradient_spike_factor: float = Field(10.0, gt=1.0)
    """A step whose gradient norm exceeds this many times the running median counts as a spike."""
    drop_infeasible: bool = False
    """Samples whose label cannot fit the CTC time steps are an error unless this drops (and lists) them."""
    page_crops: PageCropsConfig | None = None
    """null: page pairs are left out of training; else the GAN also trains (and validates) on crops of them, with
    the CTC and text terms off for those samples (they have no text)."""
    resume_from: str | None = None
    """A training checkpoint (a ``.pt`` file), or a training run's MLflow id (its ``last.pt``): continue that run
    (and its MLflow run) at the next epoch, with the recognizers its checkpoint holds."""

    @model_validator(mode="before")
    @classmethod
    def _judge_reads_at_the_recognizers_time_step(cls, values: Any) -> Any:
        """The judge's ``width_downsampling`` defaults to the in-loop recognizer's."""
        if not isinstance(values, dict) or values.get("judge", {}) is None:
            return values
        recognizer = values.get("recognizer") or {}
        downsampling = recognizer.get("width_downsampling") if isinstance(recognizer, dict) else None
        judge = values.get("judge", {})
        if downsampling is None or not isinstance(judge, dict):
            return values
        judge_recognizer = judge.get("recognizer", JUDGE_RECOGNIZER_DEFAULTS)
        if isinstance(judge_recognizer, dict) and "width_downsampling" not in judge_recognizer:
            judge = {**judge, "recognizer": {**judge_recognizer, "width_downsampling": downsampling}}
            values = {**values, "judge": judge}
        return values

    @model_validator(mode="after")
    def _judge_is_independent(self) -> TrainingConfig:
        if self.judge is None:
            return self
        if self.judge.seed == self.seed:
            raise ValueError(f"judge.seed must differ from training.seed ({self.seed}): the judge is independent")
        if self.judge.recognizer == self.recognizer:
            raise ValueError("judge.recognizer must differ from training.recognizer (other architecture settings)")
        if self.judge.recognizer.width_downsampling != self.recognizer.width_downsampling:
            raise ValueError(
                f"judge.recognizer.width_downsampling must equal training.recognizer.width_downsampling "
                f"({self.recognizer.width_downsampling}): both read the same padded lines"
            )
        return self

    @model_validator(mode="after")
    def _data_parallel_is_supported(self) -> TrainingConfig:
        if self.devices > 1 and self.recognizer_during_gan == "fine_tune":
            raise ValueError(
                "devices > 1 trains the GAN with a frozen recognizer only; set recognizer_during_gan: frozen "
                "or devices: 1"
            )
        return self


class BeamSearchConfig(StrictModel):
    beam_size: int = Field(10, ge=1)


class EvaluationConfig(StrictModel):
    """Parameters of the ``evaluation`` pipeline."""

    split: Literal["train", "valid", "test"] = "test"
    checkpoint: str | None = None
    """null: ``checkpoint_name`` of the latest training run; else a checkpoint file, or an MLflow run id of a
    training run (its checkpoint folder is read from the run's ``htr.checkpoint_folder`` tag)."""
    checkpoint_name: CheckpointName = "best"
    """Which checkpoint of a training run: ``best`` (by its monitor), ``last`` or ``best_<metric>``."""
    recognizer_only: bool = False
    """Score the recognizer alone on the clean (real) lines, without a generator: ``checkpoint`` null takes
    the latest ``in_loop_recognizer`` (stage 1's output)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(16, ge=1)
    bootstrap_resamples: int = Field(1000, ge=100)
    bootstrap_seed: int = 0
    gallery_lines: int = Field(12, ge=1)
    """The worst lines by restored CER shown in the failure gallery."""
    log_models: bool = True
    """Also log the generator and recognizer as MLflow models (``mlflow.pytorch.load_model`` gets them back)."""
    register_model: str | None = None
    """null: register nothing; else the Model Registry name under which the logged generator becomes a new
    version (needs ``log_models`` and a generator)."""
    beam_search: BeamSearchConfig | None = None
    """null: greedy best-path decoding; else CTC beam search (flashlight-text, the ``beam`` extra)."""
    expect_gain: bool = True
    """``true``: a run whose restored lines are not read better (CER reduction <= 0) or not closer to the clean
    ones (PSNR gain <= 0) than the degraded ones, or whose recognizer reads nothing even on clean lines, exits
    with status 1 after the summary block; ``false`` for a smoke test or ablation that expects no gain."""
    real_test: RealTestConfig | None = None
    """null: the test split alone; else also the held-out test on real degraded pages and lines."""

    @model_validator(mode="after")
    def _real_test_restores(self) -> EvaluationConfig:
        if self.real_test is not None and self.recognizer_only:
            raise ValueError("real_test restores real scans: it needs a generator, so recognizer_only: false")
        return self

    @model_validator(mode="after")
    def _registered_model_is_logged(self) -> EvaluationConfig:
        if self.register_model is not None and (not self.log_models or self.recognizer_only):
            raise ValueError(
                "register_model registers the logged generator: it needs log_models: true and recognizer_only: "
                "false (or set register_model: null)"
            )
        return self


class RealPagePairsConfig(StrictModel):
    """Real degraded pages with a binarization ground truth that no training used."""

    path: Path
    """A DIBCO-style folder: ``images/<id>.*`` and ``gt/<id>_gt.*`` (or ``gt/<id>.*``), 0 = ink."""
    include: str | None = None
    """Regular expression searched in each scan's file name: only matching pages are scored; null: all."""

    @field_validator("include")
    @classmethod
    def _is_a_regular_expression(cls, pattern: str | None) -> str | None:
        return _regular_expression(pattern)


class RealLinesConfig(StrictModel):
    """Real degraded lines with their transcription and no clean image, that no training used."""

    path: Path
    """A ``line_folder`` layout: ``lines/*`` + ``labels.tsv`` (+ ``splits.tsv``), or ``name.png`` + ``name.txt``."""
    split: Literal["train", "valid", "test"] | None = "test"
    """Only the lines ``splits.tsv`` puts in this split; null: every line."""


class RealTestConfig(StrictModel):
    """The held-out test on real degradation that evaluation runs after the synthetic test split (README, "The
    real test"): real page pairs scored with the DIBCO metrics, real lines read raw and restored."""

    page_pairs: RealPagePairsConfig | None = None
    lines: RealLinesConfig | None = None
    binarise: Literal["otsu", "sauvola"] = "otsu"
    """How input and restored pages are binarised, alike, for the DIBCO metrics."""
    sauvola_window: int = Field(25, ge=3)
    page_window: int = Field(256, ge=16)
    """Side of the square windows a page is restored in, at its own scale (as inference restores pages)."""
    window_overlap: int = Field(64, ge=0)
    pictures: int = Field(4, ge=1)
    """Pages, and lines, shown side by side (input and restored) in the real test's picture."""

    @model_validator(mode="after")
    def _has_material(self) -> RealTestConfig:
        if self.page_pairs is None and self.lines is None:
            raise ValueError("give page_pairs, lines or both (or set evaluation.real_test: null)")
        if self.window_overlap >= self.page_window:
            raise ValueError(f"window_overlap ({self.window_overlap}) must be below page_window ({self.page_window})")
        if self.sauvola_window % 2 == 0:
            raise ValueError(f"sauvola_window must be odd, got {self.sauvola_window}")
        return self


class DiagnosticsConfig(StrictModel):
    """Parameters of the ``diagnostics`` pipeline: which run to audit, and when a finding fails the run."""

    run_id: str | None = None
    """MLflow run id of the training run to audit; null: the latest run that trained a GAN (the newest run with
    an ``htr.checkpoint_folder`` tag)."""
    tracking_uri: str | None = None
    """The MLflow store that holds the run; null: the project's own store (``conf/*/mlflow.yml``)."""
    fail_on: Literal["problem", "warning"] | None = "problem"
    """``problem`` (default): exit non-zero when any audit finds a problem (``warning``: also on warnings), after
    every report is written; null: never (verdicts are only in the reports)."""
    checkpoint: str | None = None
    """null: ``checkpoint_name`` of the audited run; else a ``.pt`` file or a training run's MLflow id (the same
    resolution as ``evaluation.checkpoint``)."""
    checkpoint_name: CheckpointName = "best"
    """The checkpoint of the run whose config is audited and whose recognizer reads the lines."""
    split: Literal["train", "valid", "test"] = "valid"
    """The lines the recognizer reads (clean images) for the CTC and label-convention audits."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(16, ge=1)
    label_convention_margin: float = Field(0.1, gt=0.0, le=1.0)
    """An alternative label convention that reads with a CER lower by more than this is a problem."""
    rare_symbol_count: int = Field(5, ge=1)
    """A charset symbol seen fewer times than this in the train split is reported as rare."""
    gradient_problem_factor: float = Field(100.0, gt=1.0)
    """A gradient spike this many times the run's median global norm is a problem (smaller ones warn)."""
    near_duplicate_hash_size: int = Field(32, ge=4)
    """Side of the perceptual hash (``imagehash.phash``): 32 gives 1,024 bits."""
    judge_gain_margin: float = Field(0.1, ge=0.0, le=1.0)
    """The share of the degraded-to-clean CER gap that restoration closes, as the in-loop recognizer reads it, may
    exceed the judge's by this much before it is a warning (the generator may be fooling its own recognizer)."""
    near_duplicate_max_distance: int = Field(150, ge=0)
    """Images of different splits whose perceptual hashes differ in at most this many bits are near-duplicates
    (measured at hash size 32: distinct synthetic lines are >= 196 bits apart, noisy or shifted copies <= 118)."""


class InferenceConfig(StrictModel):
    """Parameters of the ``inference`` pipeline: restore (and read) a folder of your own scans."""

    input_path: Path | None = None
    """The folder of images to restore (line crops or whole pages); required by ``kedro run --pipeline=inference``."""
    mode: Literal["lines", "pages", "auto"] = "auto"
    """``auto``: decided per image from its content, the text lines its ink profile holds (one: a line; several:
    a page; see :mod:`htr_pipeline.inference.layout`); ``lines`` or ``pages`` forces it for every image."""
    line_min_aspect: float = Field(4.0, gt=0.0)
    """``auto``: an image without ink is a line when at least this many times wider than high; two text lines
    found in an image twice this wide for its height are one line crop holding parts of its neighbours."""
    max_line_aspect: float = Field(100.0, gt=1.0)
    """A line wider than this many times its height is refused (skipped, with the reason): read at the model's
    height its width, and the recognizer's memory, grow with the ratio (a 1 x 40,000 px line took 4.8 GB)."""
    min_reading_confidence: float = Field(0.5, ge=0.0, le=1.0)
    """A line reading whose symbols have a lower mean probability is flagged as likely nonsense (as is an empty
    reading, or one symbol making up most of it): the recognizer does not read these inputs."""
    expect_gain: bool = True
    """``true``: a run whose restored images score worse against the ground truth than the inputs exits with
    status 1 (the summary block still prints); ``false`` for a smoke test or ablation that expects no gain."""
    checkpoint: str | None = None
    """null: ``checkpoint_name`` of the latest training run; else a ``.pt`` file or a training run's MLflow id."""
    checkpoint_name: CheckpointName = "best"
    ground_truth_path: Path | None = None
    """A folder of clean or binary ground truth (``<name>_gt.png`` or ``<name>.png`` per input, 0 = ink): report
    the DIBCO metrics (PSNR, F-measure, pseudo F-measure, DRD) per image and averaged."""
    window_overlap: int = Field(64, ge=0)
    """Pixels shared by neighbouring windows (lines and pages), blended with ``ramp`` weights."""
    ramp: Literal["linear", "gaussian"] = "gaussian"
    page_window: int = Field(256, ge=16)
    """Side of the square windows a page is restored in, at the page's own scale."""
    binarise: Literal["otsu", "sauvola"] | None = None
    """Also write a binarised restoration (scikit-image); the DIBCO metrics use it (``otsu`` when null)."""
    sauvola_window: int = Field(25, ge=3)
    comparison_max_width: int = Field(1600, ge=100)
    """Side-by-side comparison images are scaled down to at most this width."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    windows_per_batch: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _overlap_fits_the_window(self) -> InferenceConfig:
        if self.window_overlap >= self.page_window:
            raise ValueError(f"window_overlap ({self.window_overlap}) must be below page_window ({self.page_window})")
        if self.sauvola_window % 2 == 0:
            raise ValueError(f"sauvola_window must be odd, got {self.sauvola_window}")
        return self


# ------------------------------------------------------------------------------------------- experiments


class SearchDimension(StrictModel):
    """How ``sweep.space`` searches one key: one of ``choices``, or a number from ``low`` to ``high`` (whole
    numbers when ``low``, ``high`` and ``step`` are all written as integers; ``1.0`` makes a float range)."""

    choices: list[Any] | None = Field(None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    """Draw on a log scale (``low`` must be above 0)."""
    step: int | float | None = Field(None, gt=0)
    """Spacing of the values of a range; the grid sampler needs it (or ``choices``)."""

    @model_validator(mode="after")
    def _choices_or_a_range(self) -> SearchDimension:
        ranged = (self.low, self.high, self.step) != (None, None, None) or self.log
        if self.choices is not None and ranged:
            raise ValueError("give either choices or a range (low, high, optional log or step), not both")
        if self.choices is None and (self.low is None or self.high is None):
            raise ValueError("give choices: [...] or a range with both low and high")
        if self.choices is None and not self.low < self.high:
            raise ValueError(f"low must be below high, got low {self.low} and high {self.high}")
        if self.log and self.step is not None:
            raise ValueError("a range is drawn on a log scale or in steps, not both")
        if self.log and self.low is not None and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        return self

    @property
    def is_integer(self) -> bool:
        """A range of whole numbers (``suggest_int``)."""
        bounds = (self.low, self.high, self.step if self.step is not None else 1)
        return self.choices is None and all(isinstance(bound, int) for bound in bounds)


class PruningConfig(StrictModel):
    """Stop a trial early when its validation figure is worse than the median of the other trials at the same
    epoch (Optuna's ``MedianPruner``); the trial is marked pruned."""

    startup_trials: int = Field(2, ge=0)
    """Trials that must finish before any trial is pruned."""
    warmup_epochs: int = Field(1, ge=0)
    """Epochs every trial runs before it may be pruned."""


SweepObjective = Literal["judge_cer", "psnr", "pareto", "page_f_measure"]


class SweepConfig(StrictModel):
    """Parameters of the ``sweep`` pipeline: an Optuna study over settings of this schema, each trial a training
    and evaluation run as ``kedro run`` would make it."""

    study_name: str = Field("sweep", min_length=1)
    """Workers that name the same study in the same storage share it: a rerun resumes it."""
    storage: str | None = None
    """null: the sqlite file ``optuna.db`` in the project folder; else an RDB URL shared by every worker, e.g.
    ``postgresql+psycopg://user:password@host/database``."""
    space: dict[str, SearchDimension] = {}
    """Dotted keys of this schema (``training.losses.weights.ctc``) and how each is searched. Empty (``{}``, or
    ``null`` in ``conf/local``, where ``{}`` would merge with ``conf/base``'s space) with the grid sampler and two
    seeds or more: a study of seeds, the configured settings trained once per seed."""
    fixed: dict[str, Any] = {}
    """Dotted keys every trial, and the baseline, runs with (``training.epochs: 1``)."""
    sampler: Literal["grid", "random", "tpe"] = "grid"
    """``grid``: every combination once; ``random`` and ``tpe``: ``trials`` configurations drawn by Optuna."""
    sampler_seed: int = 0
    trials: int | None = Field(None, ge=1)
    """Configurations to draw (``random``, ``tpe``; required there); ``grid`` runs every combination."""
    seeds: list[int] = Field([42], min_length=1)
    """Each configuration (and the baseline) is trained once per seed, as ``training.gan_seed``."""
    objective: SweepObjective = "judge_cer"
    """``judge_cer``: minimise the judge's corpus CER of restored lines; ``psnr``: maximise their mean PSNR;
    ``pareto``: both, as a Pareto front; ``page_f_measure``: maximise the mean F-measure of the valid split's real
    page pairs restored by the checkpoint the trial kept (``val/page_f_measure``: needs a ``page_pairs`` folder
    in ``data.real_paper``), which chooses between seeds where the valid lines cannot (README: Choosing a model on
    real pages)."""
    objective_split: Literal["train", "valid", "test"] = "valid"
    """The split the objective is measured on (the comparison reports ``evaluation.split``): choosing settings
    on the test lines would make the test figures optimistic."""
    pruning: PruningConfig | None = None
    """null: every trial trains all its epochs; needs a single objective."""
    max_retries: int = Field(1, ge=0)
    """A failed trial (an error, or a worker that stopped beating) is run again this many times at most."""
    heartbeat_seconds: int = Field(20, ge=1)
    """Each worker beats this often; a trial silent for three beats belongs to a dead worker and is failed."""

    @field_validator("space", mode="before")
    @classmethod
    def _null_space_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _sampler_settings_fit(self) -> SweepConfig:
        if self.sampler != "grid" and self.trials is None:
            raise ValueError(f"sampler {self.sampler} draws `trials` configurations: set sweep.trials")
        if self.sampler == "grid":
            stepless = [
                key for key, dimension in self.space.items() if dimension.choices is None and not dimension.step
            ]
            if stepless:
                raise ValueError(f"the grid sampler needs choices or a step for each key; none for {stepless}")
        if self.pruning is not None and self.objective == "pareto":
            raise ValueError("pruning compares one figure per epoch: it needs one objective, not pareto")
        if self.objective == "page_f_measure" and self.objective_split != "valid":
            raise ValueError(
                "objective page_f_measure is measured on the valid split's real pages: set objective_split: valid"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {self.seeds}")
        return self


class ComparisonConfig(StrictModel):
    """Parameters of the ``comparison`` pipeline: which evaluated runs to compare, against which baseline."""

    runs: list[str] = []
    """MLflow run ids of evaluated runs (a main-job run, an evaluation run, or a training run that was
    evaluated); on the command line one string of ids separated by spaces."""
    tag: str | None = None
    """``key=value``: every run carrying that MLflow tag (e.g. ``htr.sweep.study=sweep``)."""
    sweep: str | None = None
    """A sweep's study name: its finished trials, the defaults' trials as the baseline."""
    baseline: str | None = None
    """The run every other run is compared with; null: the first of ``runs`` (the oldest run with ``tag``)."""
    tracking_uri: str | None = None
    """The MLflow store holding the runs; null: the project's own."""
    bootstrap_resamples: int = Field(1000, ge=100)
    bootstrap_seed: int = 0
    confidence_level: float = Field(0.95, gt=0.0, lt=1.0)

    @field_validator("runs", mode="before")
    @classmethod
    def _ids_in_one_string(cls, runs: Any) -> Any:
        return runs.split() if isinstance(runs, str) else runs

    @model_validator(mode="after")
    def _one_selection(self) -> ComparisonConfig:
        chosen = [name for name, value in (("runs", self.runs), ("tag", self.tag), ("sweep", self.sweep)) if value]
        if len(chosen) > 1:
            raise ValueError(f"name the runs one way: runs, tag or sweep (got {' and '.join(chosen)})")
        return self


class ProjectConfig(StrictModel):
    """All parameters of the project, one section per pipeline."""

    data: DataConfig
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    inference: InferenceConfig = InferenceConfig()
    comparison: ComparisonConfig = ComparisonConfig()
    sweep: SweepConfig = SweepConfig()


def tag_of(model: type[BaseModel], tag_field: str = "variant") -> str:
    """The one value a ``Literal`` tag field allows (``variant: Literal["unet"]`` -> ``"unet"``)."""
    return typing.get_args(model.model_fields[tag_field].annotation)[0]


def union_tags(union: Any) -> tuple[str, ...]:
    """The tags of a discriminated union (``Annotated[A | B, Field(discriminator=...)]``), in member order."""
    members, tag_field = typing.get_args(union)[0], typing.get_args(union)[1].discriminator
    return tuple(tag_of(member, tag_field) for member in typing.get_args(members))


_UNION_TAGS = frozenset(tag for union in (GeneratorConfig, DiscriminatorConfig) for tag in union_tags(union))
"""Tags pydantic puts into error locations of discriminated unions; never field names."""


# ---------------------------------------------------------------------------------------------- validation


def validate_parameters(parameters: Mapping[str, Any]) -> ProjectConfig:
    """Validate the whole parameters tree; raise :class:`ConfigError` listing every problem by key path."""
    try:
        config = ProjectConfig.model_validate(dict(parameters))
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, ProjectConfig)) from None
    check_checkpoint_files(config)
    check_pages_to_monitor(config)
    return config


def validates_on_pages(config: ProjectConfig) -> bool:
    """Whether training scores real pages each epoch (``val/page_f_measure``): ``data.real_paper`` has a
    ``page_pairs`` folder (whose valid pages are restored; the GAN stage says when the split gave it none)."""
    folders = config.data.real_paper.folders if config.data.real_paper is not None else []
    return any(folder.kind == "page_pairs" for folder in folders)


def check_pages_to_monitor(config: ProjectConfig) -> None:
    """``training.monitor: val/page_f_measure`` needs real page pairs to validate on (a ``page_pairs`` folder)."""
    if config.training.monitor == PAGE_MONITOR and not validates_on_pages(config):
        raise ConfigError(
            f"training.monitor: {PAGE_MONITOR} scores the valid split's real page pairs, and "
            "data.real_paper.folders has no folder of kind page_pairs; add one, or monitor val/combined"
        )


def check_checkpoint_files(config: ProjectConfig) -> None:
    """Every checkpoint file the parameters name exists, so a typo stops the run before any work starts."""
    files = {
        "training.recognizer_checkpoint": config.training.recognizer_checkpoint,
        # Each either a .pt file or a training run's MLflow id:
        "training.resume_from": named_file(config.training.resume_from),
        "evaluation.checkpoint": named_file(config.evaluation.checkpoint),
        "inference.checkpoint": named_file(config.inference.checkpoint),
        "diagnostics.checkpoint": named_file(config.diagnostics.checkpoint),
    }
    problems = [
        f"{key}: checkpoint file '{path}' (resolved: '{path.resolve()}') does not exist. Point it at an "
        "existing .pt file, or set it to null."
        for key, path in files.items()
        if path is not None and not path.is_file()
    ]
    if problems:
        raise ConfigError(_problem_list(problems))


def _problem_list(problems: list[str]) -> str:
    heading = f"Invalid parameters ({len(problems)} problem{'s' if len(problems) > 1 else ''}):"
    return "\n".join([heading, *(f"  - {problem}" for problem in problems)])


def effective_parameters(config: ProjectConfig) -> dict[str, Any]:
    """The validated config as plain data, defaults included: what MLflow logs and audits compare."""
    return config.model_dump(mode="json")


def nested_items(values: Mapping[str, Any], prefix: str = "", separator: str = ".") -> Iterator[tuple[str, Any]]:
    """Every ``(path, value)`` of a nested mapping, sections before their keys: ``("training", {...})``,
    ``("training.seed", 7)``, ... The one walk of nested config and summaries in this project."""
    for key, value in values.items():
        path = f"{prefix}{separator}{key}" if prefix else str(key)
        yield path, value
        if isinstance(value, Mapping):
            yield from nested_items(value, path, separator)


def flatten_as_logged(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The params MLflow holds for ``values``: ``.``-joined keys, ``str`` of every value that is not a mapping
    (lists and ``None`` included); an empty mapping logs nothing."""
    return {path: str(value) for path, value in nested_items(values, prefix) if not isinstance(value, Mapping)}


def with_overrides(parameters: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` with each dotted key of ``overrides`` set (``training.losses.weights.ctc: 3.0``), as
    ``kedro run --params`` sets them: sections on the way are created, so validation then names a misspelt key;
    a value in the way (``training.seed.x``) is an error naming it."""
    result = copy.deepcopy(dict(parameters))
    for path, value in overrides.items():
        *sections, last = path.split(".")
        node = result
        for depth, key in enumerate(sections):
            child = node.get(key)
            if child is None:  # absent, or null (``adaptive_balancing: null``): the override makes the section
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"{path}: '{'.'.join(sections[: depth + 1])}' holds a value, not a section of keys")
            node = child
        node[last] = copy.deepcopy(value)
    return result


def key_paths() -> list[str]:
    """Every dotted key the schema knows (fields of every variant included; list items as ``sources.[]``)."""
    return sorted({".".join(path) for path in _field_paths(ProjectConfig, ())})


def check_key_path(path: str, setting: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is a dotted key of the schema; the message names ``setting``
    (where the key was written) and the closest valid key."""
    known = key_paths()
    if path in known:
        return
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    hint = f"Did you mean '{close[0]}'?" if close else "Keys are dotted paths of config.py, e.g. 'training.epochs'."
    raise ConfigError(_problem_list([f"{setting}: '{path}' is not a key of the parameters schema. {hint}"]))


def validated_sections(config: ProjectConfig) -> Iterator[tuple[str, Any]]:
    """``(path, validated value)`` of every section and sub-section, as nodes receive them (``params:<path>``):
    sub-models as models, plain values as they are. Keys of a mapping-valued setting may hold dots themselves
    (``sweep.space``'s ``training.losses.weights.ctc``), so the walk follows the values, never a split path."""

    def walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, BaseModel):
            children: Iterator[tuple[str, Any]] = ((name, getattr(value, name)) for name in type(value).model_fields)
        elif isinstance(value, Mapping):
            children = iter(value.items())
        else:
            return
        for key, child in children:
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, child
            yield from walk(child, path)

    yield from walk(config, "")


def describe_validation_error(error: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()) -> str:
    known_paths = list(_field_paths(model, prefix))
    problems = []
    for detail in error.errors():
        location = prefix + _visible_location(detail["loc"])
        path = _format_path(location)
        if detail["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown key. {_suggest(location, known_paths)}")
        elif detail["type"] == "missing":
            problems.append(f"{path}: required key is missing.")
        elif detail["type"] in ("model_type", "model_attributes_type", "dict_type"):
            keys = _child_keys(location, known_paths)
            problems.append(
                f"{path}: expected a mapping with keys {keys} (or null where allowed), got {detail.get('input')!r}."
            )
        else:
            problems.append(f"{path}: {detail['msg']} (got {detail.get('input')!r}).")
    return _problem_list(problems)


def _visible_location(location: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic inserts (``sources.0.synthetic.x`` -> ``sources.0.x``)."""
    return tuple(part for part in location if part not in _UNION_TAGS)


def _format_path(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _child_keys(location: tuple[Any, ...], known_paths: list[tuple[str, ...]]) -> str:
    parent = tuple(str(part) if not isinstance(part, int) else "[]" for part in location)
    children = sorted(
        {path[len(parent)] for path in known_paths if path[: len(parent)] == parent and len(path) > len(parent)}
    )
    return "{" + ", ".join(children) + "}"


def _suggest(location: tuple[Any, ...], known_paths: list[tuple[str, ...]]) -> str:
    """Name where a key of that name belongs, or the closest sibling key."""
    key = str(location[-1])
    parent = tuple(str(part) if not isinstance(part, int) else "[]" for part in location[:-1])
    elsewhere = [path for path in known_paths if path[-1] == key and path[:-1] != parent]
    if elsewhere:
        return "It belongs at: " + ", ".join(_format_path(tuple(p for p in path if p != "[]")) for path in elsewhere)
    siblings = [path[-1] for path in known_paths if path[:-1] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.5)
    if close:
        return f"Did you mean '{close[0]}'?"
    return f"Valid keys here: {', '.join(sorted(set(siblings))) or 'none'}."


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        for nested_model, is_list in _nested_models(field.annotation):
            yield from _field_paths(nested_model, (*path, "[]") if is_list else path)


def _nested_models(annotation: Any, in_list: bool = False) -> Iterator[tuple[type[BaseModel], bool]]:
    origin = typing.get_origin(annotation)
    if annotation is SourceSettings:
        for settings in source_settings_by_kind().values():
            yield settings, in_list
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, in_list
    elif origin is Annotated:
        yield from _nested_models(typing.get_args(annotation)[0], in_list)
    elif origin in (list, tuple):
        for argument in typing.get_args(annotation):
            yield from _nested_models(argument, True)
    elif origin in (Union, types.UnionType):
        for argument in typing.get_args(annotation):
            yield from _nested_models(argument, in_list)
