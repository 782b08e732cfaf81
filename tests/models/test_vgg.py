"""The frozen VGG perceptual feature extractor: strict loading from a local file, frozen weights, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from htr_pipeline.models.vgg import VGG_LAYERS, VggFeatureExtractor


def vgg_state_dict(variant: str) -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's key names, plus a classifier entry that must be ignored."""
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {"classifier.0.weight": torch.zeros(2, 2)}
    index, in_channels = 0, 3
    for step in VGG_LAYERS[variant]:
        if step == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(step, in_channels, 3, 3, generator=generator) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(step)
        index, in_channels = index + 2, step  # conv, then its ReLU
    return state


@pytest.fixture(scope="module")
def vgg16_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(vgg_state_dict("vgg16"), path)
    return path


def test_vgg_features_load_strictly_and_stay_frozen(vgg16_weights: Path):
    extractor = VggFeatureExtractor("vgg16", vgg16_weights)
    images = torch.rand(2, 1, 32, 48, requires_grad=True)
    features = extractor(images)
    assert [tuple(feature.shape[1:]) for feature in features] == [
        (64, 32, 48),
        (128, 16, 24),
        (256, 8, 12),
        (512, 4, 6),
        (512, 2, 3),
    ]
    assert all(not parameter.requires_grad for parameter in extractor.parameters())
    features[-1].sum().backward()
    assert images.grad.abs().sum() > 0
    assert set(extractor.state_dict()) == {key for key in vgg_state_dict("vgg16") if key.startswith("features.")}


def test_vgg_weights_of_another_variant_are_named_as_wrong(vgg16_weights: Path):
    with pytest.raises(ValueError, match=r"vgg16\.pth.*vgg19.*missing keys \['features\.16\.bias'"):
        VggFeatureExtractor("vgg19", vgg16_weights)


def test_vgg_weights_with_a_wrong_shape_are_named(tmp_path: Path):
    state = vgg_state_dict("vgg16")
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "gray_vgg16.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"gray_vgg16\.pth.*features\.0\.weight \(64, 1, 3, 3\)"):
        VggFeatureExtractor("vgg16", path)


def test_missing_vgg_weights_name_the_file_and_the_config_key(tmp_path: Path):
    missing = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*training\.losses\.perceptual\.weights_path"):
        VggFeatureExtractor("vgg16", missing)
