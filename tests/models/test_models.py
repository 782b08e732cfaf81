"""Generator, discriminator and recognizer variants: shapes, ranges, determinism, registry, one training step."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field, TypeAdapter
from torch import Tensor, nn

from htr_pipeline.charset import BLANK_INDEX
from htr_pipeline.config import (
    DiscriminatorConfig,
    DualModalDiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminatorConfig,
    RecognizerConfig,
    ResidualUnetGeneratorConfig,
    StrictModel,
    TrainingConfig,
    UnetGeneratorConfig,
    union_tags,
)
from htr_pipeline.models import RecognizerOutput, build_discriminator, build_generator, build_recognizer
from htr_pipeline.models.discriminator import DualModalDiscriminator, PatchDiscriminator
from htr_pipeline.models.generator import BatchInstanceNorm2d, ResidualUnetGenerator, UnetGenerator
from htr_pipeline.models.recognizer import CrnnRecognizer
from htr_pipeline.models.registry import (
    DISCRIMINATORS,
    GENERATORS,
    RECOGNIZERS,
    check_every_variant_has_a_builder,
    crnn,
)

NUM_CLASSES = 12
LSTM_HIDDEN = 12
PREVIOUS_SYSTEM_NUM_CLASSES = 109
"""The previous system's run: 108 characters + the CTC blank."""


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def line_images(batch: int, height: int, width: int, seed: int = 0) -> Tensor:
    """Light paper with dark vertical strokes: (batch, 1, height, width) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    images = 0.85 + 0.1 * torch.rand(batch, 1, height, width, generator=generator)
    for column in torch.randint(0, max(1, width - 3), (max(1, width // 12),), generator=generator).tolist():
        images[..., height // 4 : 3 * height // 4, column : column + 2] = 0.1
    return images


def snapshot(model: nn.Module) -> list[Tensor]:
    return [parameter.detach().clone() for parameter in model.parameters()]


def moved(before: list[Tensor], model: nn.Module) -> list[bool]:
    return [not torch.equal(old, new) for old, new in zip(before, model.parameters(), strict=True)]


def as_tensor(output: Tensor | RecognizerOutput) -> Tensor:
    if isinstance(output, RecognizerOutput):
        return torch.cat([output.logits, output.features], dim=-1)
    return output


def padded_texts(texts: list[list[int]], max_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Label sequences padded with the blank, as the data loader hands them to the discriminator."""
    lengths = torch.tensor([len(text) for text in texts], dtype=torch.int64)
    labels = torch.full((len(texts), max_length or max(1, int(lengths.max()))), BLANK_INDEX, dtype=torch.int64)
    for row, text in enumerate(texts):
        labels[row, : len(text)] = torch.tensor(text, dtype=torch.int64)
    return labels, lengths


@pytest.fixture
def recognizer() -> CrnnRecognizer:
    torch.manual_seed(0)
    return CrnnRecognizer(
        NUM_CLASSES, [8, 16, 16], width_downsampling=4, lstm_hidden=LSTM_HIDDEN, lstm_layers=2, dropout=0.1
    )


def small_generators() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        variant
        for normalisation in ("instance", "batch", "batch_instance")
        for variant in (
            UnetGenerator([4, 8, 16], normalisation=normalisation),
            ResidualUnetGenerator([4, 8, 16], residual_blocks=2, normalisation=normalisation),
        )
    ]


def generator_name(model: nn.Module) -> str:
    return f"{type(model).__name__}-{model.normalisation}"


def small_dual_modal() -> DualModalDiscriminator:
    torch.manual_seed(0)
    return DualModalDiscriminator([8, 16, 16], num_classes=NUM_CLASSES, text_embedding_dim=8).eval()


# ---------------------------------------------------------------------------------------------- recognizer


@pytest.mark.parametrize("width", [4, 36, 128, 200])
@pytest.mark.parametrize("height", [16, 37, 64])
def test_recognizer_gives_width_over_downsampling_time_steps(
    recognizer: CrnnRecognizer, height: int, width: int
) -> None:
    output = recognizer(line_images(2, height, width))
    assert isinstance(output, RecognizerOutput)
    assert output.logits.shape == (2, width // 4, NUM_CLASSES)
    assert output.features.shape == (2, width // 4, 2 * LSTM_HIDDEN)
    assert torch.isfinite(output.logits).all()
    assert recognizer.time_steps(torch.tensor([width, 2 * width])).tolist() == [width // 4, width // 2]


def test_recognizer_rejects_a_width_that_is_not_a_multiple_of_the_downsampling(recognizer: CrnnRecognizer) -> None:
    with pytest.raises(ValueError, match=r"width 130 .* width_downsampling 4"):
        recognizer(line_images(1, 32, 130))


def test_recognizer_trunk_features_are_the_conv_block_outputs(recognizer: CrnnRecognizer) -> None:
    features = recognizer.trunk_features(line_images(1, 32, 64))
    assert [tuple(block.shape) for block in features] == [(1, 8, 16, 32), (1, 16, 8, 16), (1, 16, 4, 16)]


def test_recognizer_keeps_its_constructor_arguments(recognizer: CrnnRecognizer) -> None:
    assert (recognizer.num_classes, recognizer.conv_channels, recognizer.width_downsampling) == (12, [8, 16, 16], 4)
    assert (recognizer.lstm_hidden, recognizer.lstm_layers, recognizer.dropout) == (LSTM_HIDDEN, 2, 0.1)


# ---------------------------------------------------------------------------------------------- generators


@pytest.mark.parametrize("generator", small_generators(), ids=generator_name)
@pytest.mark.parametrize(("height", "width"), [(37, 141), (16, 64), (1, 1)])
def test_generator_output_has_the_input_shape_and_values_in_unit_range(
    generator: nn.Module, height: int, width: int
) -> None:
    degraded = line_images(2, height, width)
    restored = generator.train()(degraded)
    assert restored.shape == degraded.shape
    assert torch.isfinite(restored).all()
    assert restored.min() >= 0.0 and restored.max() <= 1.0


@pytest.mark.parametrize(
    "variant",
    [
        UnetGenerator([8, 16, 32]),
        ResidualUnetGenerator([8, 16, 32], 1),
        UnetGenerator([8, 16, 32], normalisation="batch"),
        ResidualUnetGenerator([8, 16, 32], 1, normalisation="batch"),
        UnetGenerator([8, 16, 32], normalisation="batch_instance"),
    ],
    ids=generator_name,
)
def test_an_untrained_generator_returns_its_input(variant: nn.Module) -> None:
    degraded = torch.rand(2, 1, 20, 52) * 0.9 + 0.05
    assert torch.allclose(variant.eval()(degraded), degraded, atol=1e-5)


@pytest.mark.parametrize("generator", small_generators(), ids=generator_name)
def test_generator_output_of_a_line_does_not_depend_on_its_batch(generator: nn.Module) -> None:
    degraded = line_images(3, 37, 141)
    generator.eval()
    with torch.no_grad():
        batched = generator(degraded)
        alone = generator(degraded[1:2])
    torch.testing.assert_close(batched[1:2], alone, rtol=1e-5, atol=1e-6)


def _trained_a_little(generator: nn.Module) -> nn.Module:
    """``generator`` with an output layer that changes its input and, for BatchNorm, running statistics learnt from
    a few training batches; in eval mode."""
    torch.manual_seed(1)
    nn.init.normal_(generator.to_image.weight, std=1.0)
    generator.train()
    with torch.no_grad():
        for seed in range(30):
            generator(line_images(2, 64, 128, seed=seed))
    return generator.eval()


def _blank_paper_then_with_ink_far_from_its_right_end() -> tuple[Tensor, Tensor]:
    """Textured paper (64 x 640) without ink, and the same paper with strokes in its first 120 columns."""
    noise = torch.rand(1, 1, 68, 644, generator=torch.Generator().manual_seed(3))
    paper = 0.85 + 0.3 * (F.avg_pool2d(noise, 5, stride=1) - 0.5)
    inked = paper.clone()
    for column in range(8, 120, 14):
        inked[..., 12:52, column : column + 3] *= 0.2
    return paper, inked


BLANK_END = slice(448, 640)
"""Columns of the paper more than 320 px from the nearest stroke, beyond the small generators' reach."""


@pytest.mark.parametrize("variant", ["unet", "unet_residual"])
def test_with_batch_normalisation_blank_paper_is_restored_alike_whatever_ink_lies_out_of_reach(variant: str) -> None:
    """A window of blank textured paper is restored from its own pixels, whether or not a line of text is elsewhere
    in the window: BatchNorm in eval mode uses the statistics learnt in training, not the window's own."""
    generator = _trained_a_little(
        UnetGenerator([4, 8, 16], normalisation="batch")
        if variant == "unet"
        else ResidualUnetGenerator([4, 8, 16], residual_blocks=2, normalisation="batch")
    )
    paper, inked = _blank_paper_then_with_ink_far_from_its_right_end()
    with torch.no_grad():
        alone, beside_ink = generator(paper), generator(inked)
    assert not torch.allclose(alone, paper, atol=1e-2)  # the generator does change the paper
    torch.testing.assert_close(alone[..., BLANK_END], beside_ink[..., BLANK_END], rtol=0, atol=1e-5)


def test_with_instance_normalisation_ink_anywhere_in_the_window_changes_how_blank_paper_is_restored() -> None:
    """Why ``batch`` exists: InstanceNorm normalises blank paper by its grain alone, and by the ink's contrast once
    ink is in the window, so the same paper is restored otherwise (on DIBCO 2011-PR7 a trained generator drew
    strokes on blank paper and none beside a line of text: README, Blank paper)."""
    generator = _trained_a_little(UnetGenerator([4, 8, 16], normalisation="instance"))
    paper, inked = _blank_paper_then_with_ink_far_from_its_right_end()
    with torch.no_grad():
        alone, beside_ink = generator(paper), generator(inked)
    assert (alone[..., BLANK_END] - beside_ink[..., BLANK_END]).abs().max() > 1e-2


@pytest.mark.parametrize("normalisation", ["batch", "batch_instance"])
def test_a_batch_normalised_generator_restores_the_same_after_its_weights_and_statistics_round_trip(
    tmp_path, normalisation: str
) -> None:
    config = UnetGeneratorConfig(variant="unet", channels=[4, 8, 16], normalisation=normalisation)
    trained = _trained_a_little(build_generator(config))
    assert any(name.endswith("running_var") for name in trained.state_dict())
    torch.save(trained.state_dict(), tmp_path / "generator.pt")
    rebuilt = build_generator(config)
    rebuilt.load_state_dict(torch.load(tmp_path / "generator.pt", weights_only=True), strict=True)
    images = line_images(2, 37, 141)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(images), trained(images), rtol=0, atol=0)


@pytest.mark.parametrize("generator", small_generators(), ids=generator_name)
def test_every_normalisation_trains_under_bf16_autocast(generator: nn.Module) -> None:
    """The GPU path's mixed precision, on the CPU: a forward and backward pass under bf16 autocast give finite
    output in [0, 1] and a finite gradient for every parameter, whichever normalisation the generator has."""
    nn.init.normal_(generator.to_image.weight)
    generator.train().zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        restored = generator(line_images(2, 32, 64))
    restored.float().mean().backward()
    assert torch.isfinite(restored).all() and restored.min() >= 0.0 and restored.max() <= 1.0
    assert all(torch.isfinite(parameter.grad).all() for parameter in generator.parameters())


def test_batch_instance_normalisation_is_instance_norm_at_gate_0_batch_norm_at_gate_1_and_clamps_between() -> None:
    torch.manual_seed(0)
    norm = BatchInstanceNorm2d(3)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    for _ in range(5):
        norm(torch.randn(4, 3, 8, 8) * 2.0 + 1.0)  # running statistics, as training leaves them
    norm.eval()
    features = torch.randn(2, 3, 8, 8)
    batch = nn.BatchNorm2d(3, affine=True).eval()
    batch.load_state_dict(
        {"weight": norm.weight, "bias": norm.bias, **{k: v for k, v in norm.batch.state_dict().items()}}
    )
    instance = F.instance_norm(features, weight=norm.weight, bias=norm.bias)
    with torch.no_grad():
        for gate, expected in ((0.0, instance), (-3.0, instance), (1.0, batch(features)), (7.0, batch(features))):
            norm.gate.fill_(gate)
            torch.testing.assert_close(norm(features), expected, rtol=1e-5, atol=1e-5)
        norm.gate.fill_(0.25)
        torch.testing.assert_close(norm(features), 0.25 * batch(features) + 0.75 * instance, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ discriminators


def test_patch_discriminator_gives_patch_logits() -> None:
    discriminator = PatchDiscriminator([8, 16, 16])
    degraded, candidate = line_images(2, 37, 141), line_images(2, 37, 141, seed=1)
    logits = discriminator(degraded, candidate)
    # two stride-2 blocks, then the last block and the final conv (k4, p1) each take one pixel off
    assert logits.shape == (2, 1, 37 // 4 - 2, 141 // 4 - 2)
    assert torch.isfinite(logits).all()


def test_discriminators_reject_mismatched_pairs() -> None:
    with pytest.raises(ValueError, match="same shape"):
        PatchDiscriminator([8])(line_images(1, 32, 64), line_images(1, 32, 60))


def test_dual_modal_accepts_empty_texts() -> None:
    discriminator = small_dual_modal()
    degraded, candidate = line_images(2, 37, 141), line_images(2, 37, 141, seed=1)
    with torch.no_grad():
        mixed = discriminator(degraded, candidate, *padded_texts([[3, 4, 5], []]))
        all_empty = discriminator(degraded, candidate, *padded_texts([[], []], max_length=0))
    assert mixed.shape == all_empty.shape == (2, 1, 37 // 4 - 2, 141 // 4 - 2)
    assert torch.isfinite(mixed).all() and torch.isfinite(all_empty).all()
    torch.testing.assert_close(mixed[1], all_empty[1])


def test_dual_modal_output_depends_on_the_text_but_not_on_its_padding() -> None:
    discriminator = small_dual_modal()
    degraded, candidate = line_images(2, 37, 141), line_images(2, 37, 141, seed=1)
    with torch.no_grad():
        first = discriminator(degraded, candidate, *padded_texts([[3, 4, 5], [1, 2]]))
        other_text = discriminator(degraded, candidate, *padded_texts([[6, 7, 8, 9], [1, 2]]))
        more_padding = discriminator(degraded, candidate, *padded_texts([[3, 4, 5], [1, 2]], max_length=20))
    assert not torch.allclose(first[0], other_text[0])
    torch.testing.assert_close(first[1], other_text[1])
    torch.testing.assert_close(first, more_padding)


def test_dual_modal_rejects_lengths_beyond_the_labels() -> None:
    labels, _ = padded_texts([[3, 4]])
    # Checked on the device (no host synchronisation); on the CPU it raises at once.
    with pytest.raises(RuntimeError, match="text_lengths must be in"):
        small_dual_modal()(line_images(1, 32, 64), line_images(1, 32, 64), labels, torch.tensor([5]))


# ------------------------------------------------------------------------------------------------ registry


@pytest.mark.parametrize(
    ("config", "expected_class"),
    [
        (UnetGeneratorConfig(variant="unet", channels=[4, 8]), UnetGenerator),
        (
            ResidualUnetGeneratorConfig(variant="unet_residual", channels=[4, 8], residual_blocks=2),
            ResidualUnetGenerator,
        ),
    ],
)
def test_registry_builds_each_generator(
    config: UnetGeneratorConfig | ResidualUnetGeneratorConfig, expected_class: type
) -> None:
    generator = build_generator(config)
    assert type(generator) is expected_class
    assert generator.channels == [4, 8]
    assert generator(line_images(1, 20, 30)).shape == (1, 1, 20, 30)


def test_registry_builds_each_discriminator() -> None:
    patch = build_discriminator(PatchDiscriminatorConfig(variant="patch", channels=[8, 16]), NUM_CLASSES)
    dual = build_discriminator(
        DualModalDiscriminatorConfig(variant="dual_modal", channels=[8, 16], text_embedding_dim=6), NUM_CLASSES
    )
    assert type(patch) is PatchDiscriminator and type(dual) is DualModalDiscriminator
    assert dual.text_encoder.embedding.num_embeddings == NUM_CLASSES
    assert dual.text_encoder.embedding.embedding_dim == 6
    assert set(DISCRIMINATORS) == {"patch", "dual_modal"} and set(GENERATORS) == {"unet", "unet_residual"}


def test_registry_builds_the_recognizer_the_config_describes() -> None:
    config = RecognizerConfig(conv_channels=[8, 16, 16], width_downsampling=8, lstm_hidden=10, lstm_layers=1)
    recognizer = build_recognizer(config, NUM_CLASSES)
    assert type(recognizer) is CrnnRecognizer and RECOGNIZERS["crnn"] is crnn
    assert recognizer.width_downsampling == 8 and recognizer.lstm_layers == 1
    assert recognizer(line_images(1, 32, 64)).logits.shape == (1, 8, NUM_CLASSES)


def test_registry_builds_the_default_training_models() -> None:
    training = TrainingConfig()
    assert isinstance(build_recognizer(training.recognizer, NUM_CLASSES), CrnnRecognizer)
    assert isinstance(build_generator(training.generator), nn.Module)
    assert isinstance(build_discriminator(training.discriminator, NUM_CLASSES), nn.Module)


def test_the_registries_build_exactly_the_variants_the_config_accepts() -> None:
    assert tuple(GENERATORS) == union_tags(GeneratorConfig) == ("unet", "unet_residual")
    assert tuple(DISCRIMINATORS) == union_tags(DiscriminatorConfig) == ("patch", "dual_modal")


def test_a_new_variant_needs_only_its_settings_class_and_its_builder() -> None:
    class TinyGeneratorConfig(StrictModel):
        variant: Literal["tiny"]
        channels: list[int]

    def tiny(config: TinyGeneratorConfig) -> nn.Module:
        return nn.Conv2d(1, 1, kernel_size=1)

    generators = Annotated[
        UnetGeneratorConfig | ResidualUnetGeneratorConfig | TinyGeneratorConfig, Field(discriminator="variant")
    ]
    with pytest.raises(TypeError, match=r"settings without a builder in models/registry.py: \['tiny'\]"):
        check_every_variant_has_a_builder(GENERATORS, union_tags(generators), "generator")
    registry = {**GENERATORS, "tiny": tiny}
    check_every_variant_has_a_builder(registry, union_tags(generators), "generator")
    settings = TypeAdapter(generators).validate_python({"variant": "tiny", "channels": [4]})
    assert isinstance(registry[settings.variant](settings), nn.Conv2d)
    with pytest.raises(TypeError, match=r"builders without settings in config.py: \['tiny'\]"):
        check_every_variant_has_a_builder(registry, union_tags(GeneratorConfig), "generator")


def test_registry_names_the_valid_variants_of_an_unknown_one() -> None:
    config = UnetGeneratorConfig.model_construct(variant="transformer", channels=[4, 8])
    with pytest.raises(KeyError, match=r"transformer.*unet, unet_residual"):
        build_generator(config)


# --------------------------------------------------------------------------------------------- determinism


def test_every_model_in_eval_mode_gives_identical_outputs_for_the_same_input(recognizer: CrnnRecognizer) -> None:
    degraded, candidate = line_images(2, 32, 64), line_images(2, 32, 64, seed=1)
    labels, lengths = padded_texts([[3, 4, 5], [1]])
    runs: list[tuple[nn.Module, tuple[Tensor, ...]]] = [
        (recognizer, (degraded,)),
        *((generator, (degraded,)) for generator in small_generators()),
        (PatchDiscriminator([8, 16]), (degraded, candidate)),
        (small_dual_modal(), (degraded, candidate, labels, lengths)),
    ]
    for model, inputs in runs:
        model.eval()
        with torch.no_grad():
            first, second = as_tensor(model(*inputs)), as_tensor(model(*inputs))
        assert torch.equal(first, second), type(model).__name__


# -------------------------------------------------------------------------------------------- previous system's scale


def previous_system_scale_recognizer() -> CrnnRecognizer:
    """128 x 1024 lines to 128 CTC time steps, as in the previous system's run."""
    return CrnnRecognizer(
        PREVIOUS_SYSTEM_NUM_CLASSES,
        [64, 128, 256, 256, 512],
        width_downsampling=8,
        lstm_hidden=256,
        lstm_layers=2,
        dropout=0.1,
    )


def test_previous_system_scale_generator_is_the_classic_31m_parameter_unet() -> None:
    counts = {
        "UnetGenerator([64, 128, 256, 512, 1024])": parameter_count(UnetGenerator([64, 128, 256, 512, 1024])),
        "ResidualUnetGenerator([64, 128, 256, 512, 1024], 1)": parameter_count(
            ResidualUnetGenerator([64, 128, 256, 512, 1024], 1)
        ),
        "CrnnRecognizer(109, [64, 128, 256, 256, 512], 8, 256, 2)": parameter_count(previous_system_scale_recognizer()),
        "PatchDiscriminator([64, 128, 256, 512])": parameter_count(PatchDiscriminator([64, 128, 256, 512])),
    }
    assert 29_000_000 <= counts["UnetGenerator([64, 128, 256, 512, 1024])"] <= 33_000_000
    # Exact, so a change to any layer of these variants shows here (and in the README's model sizes).
    assert counts == {
        "UnetGenerator([64, 128, 256, 512, 1024])": 31_036_481,
        "ResidualUnetGenerator([64, 128, 256, 512, 1024], 1)": 47_095_557,
        "CrnnRecognizer(109, [64, 128, 256, 256, 512], 8, 256, 2)": 5_350_957,
        "PatchDiscriminator([64, 128, 256, 512])": 2_764_609,
    }


@pytest.mark.slow
def test_one_training_step_at_previous_system_scale_on_cpu() -> None:
    """Generator and discriminator steps at 128 x 1024, batch 1, through the frozen previous-system-scale recognizer."""
    torch.manual_seed(0)
    generator = UnetGenerator([64, 128, 256, 512, 1024]).train()
    # The head starts at zero (an untrained generator returns its input), so on the very first step only the
    # head would get a gradient; give it the small weights one step would, so every layer is reached.
    torch.nn.init.normal_(generator.to_image.weight, std=1e-3)
    discriminator = DualModalDiscriminator(
        [64, 128, 256, 512], PREVIOUS_SYSTEM_NUM_CLASSES, text_embedding_dim=32
    ).train()
    recognizer = previous_system_scale_recognizer().eval().requires_grad_(False)
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    generator_before, discriminator_before, recognizer_before = (
        snapshot(model) for model in (generator, discriminator, recognizer)
    )

    clean = line_images(1, 128, 1024)
    degraded = (clean * 0.8 + 0.1 * torch.rand_like(clean)).clamp(0, 1)
    labels, lengths = padded_texts([list(range(1, 41))])
    started = time.perf_counter()

    restored = generator(degraded)
    log_probs = recognizer(restored).logits.float().log_softmax(-1)  # (batch, time_steps, num_classes)
    time_steps = recognizer.time_steps(torch.tensor([1024]))
    ctc = F.ctc_loss(log_probs.transpose(0, 1), labels, time_steps, lengths, blank=BLANK_INDEX, reduction="mean")
    (ctc_gradient,) = torch.autograd.grad(ctc, restored, retain_graph=True)
    fake_logits = discriminator(degraded, restored, labels, lengths)
    adversarial = F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    generator_loss = 100.0 * F.l1_loss(restored, clean) + adversarial + ctc
    generator_optimizer.zero_grad()
    generator_loss.backward()
    generator_optimizer.step()

    real_logits = discriminator(degraded, clean, labels, lengths)
    fake_logits = discriminator(degraded, restored.detach(), labels, lengths)
    discriminator_loss = F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(
        fake_logits, torch.zeros_like(fake_logits)
    )
    discriminator_optimizer.zero_grad()
    discriminator_loss.backward()
    discriminator_optimizer.step()
    print(f"previous-system-scale training step: {time.perf_counter() - started:.1f} s")

    assert torch.isfinite(ctc_gradient).all() and ctc_gradient.abs().sum() > 0, "CTC reaches the generator's output"
    assert torch.isfinite(generator_loss) and torch.isfinite(discriminator_loss) and torch.isfinite(ctc)
    for model in (generator, discriminator):
        assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    assert all(moved(generator_before, generator)), "every generator parameter gets a gradient and moves"
    assert all(moved(discriminator_before, discriminator)), "every discriminator parameter gets a gradient and moves"
    assert not any(moved(recognizer_before, recognizer)), "the frozen recognizer stays as it was"
