"""The frozen VGG feature extractor for the perceptual loss (Johnson et al. 2016, "Perceptual losses for real-time
style transfer and super-resolution", ECCV): torchvision's VGG ``features`` stack (Simonyan & Zisserman 2015),
loaded strictly from a local state dict and never downloaded."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

VGG_LAYERS: dict[str, list[int | str]] = {
    # torchvision's configurations "D" and "E": conv 3x3 output channels, "M" = 2x2 max pooling
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_PATH_KEY = "training.losses.perceptual.weights_path"


class VggFeatureExtractor(nn.Module):
    """Frozen torchvision VGG ``features`` stack, loaded strictly from a local state dict; never downloads."""

    def __init__(self, variant: Literal["vgg16", "vgg19"], weights_path: Path):
        super().__init__()
        if variant not in VGG_LAYERS:
            raise ValueError(f"unknown VGG variant {variant!r}; expected one of {sorted(VGG_LAYERS)}")
        self.features = _vgg_feature_layers(VGG_LAYERS[variant])
        self.pooling_count = VGG_LAYERS[variant].count("M")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.load_state_dict(_read_vgg_features(Path(weights_path), self.state_dict(), variant), strict=True)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> list[Tensor]:
        """The ReLU outputs just before each pooling, shallow to deep (five maps)."""
        # images: (batch, 1, height, width), values in [0, 1]; height and width at least 16
        features = (images.expand(-1, 3, -1, -1) - self.mean) / self.std
        before_pooling = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                before_pooling.append(features)
                if len(before_pooling) == self.pooling_count:
                    break  # the last pooling feeds nothing we use
            features = layer(features)
        return before_pooling


def _vgg_feature_layers(layer_plan: list[int | str]) -> nn.Sequential:
    """The layers in torchvision's order, so the state-dict keys (``features.<index>.weight``) match."""
    layers: list[nn.Module] = []
    in_channels = 3
    for step in layer_plan:
        if step == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out_channels = int(step)
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = out_channels
    return nn.Sequential(*layers)


def _read_vgg_features(weights_path: Path, expected: dict[str, Tensor], variant: str) -> dict[str, Tensor]:
    """The ``features.*`` tensors of a torchvision VGG state dict, checked key by key against ``expected``."""
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"VGG weights file {weights_path} does not exist; set {WEIGHTS_PATH_KEY} to a local torchvision "
            f"{variant} state dict (nothing is downloaded)"
        )
    try:
        stored = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as error:
        raise ValueError(f"cannot read {weights_path} as a torch state dict: {error}") from error
    if not isinstance(stored, dict):
        raise ValueError(f"{weights_path} holds a {type(stored).__name__}, not a state dict")
    features = {key: value for key, value in stored.items() if key.startswith("features.")}
    missing = sorted(set(expected) - set(features))
    unexpected = sorted(set(features) - set(expected))
    misshaped = [
        f"{key} {tuple(features[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in sorted(set(expected) & set(features))
        if features[key].shape != expected[key].shape
    ]
    if missing or unexpected or misshaped:
        raise ValueError(
            f"{weights_path} is not a torchvision {variant} state dict: missing keys {missing}, "
            f"unexpected keys {unexpected}, mis-shaped tensors {misshaped}"
        )
    return features
