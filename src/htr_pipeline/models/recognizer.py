"""The CTC text recognizer ``crnn``: conv blocks, a BiLSTM over the columns, a linear layer over the charset.

It reads a line image and gives one distribution over ``num_classes`` (charset + blank at
:data:`htr_pipeline.charset.BLANK_INDEX`) per CTC time step; a line ``W`` px wide gives exactly
``W // width_downsampling`` time steps, so data checks can know the time steps without running the model.
During GAN training it is frozen (``eval()``): its BatchNorm then uses running statistics and no sample of a
batch affects another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass
class RecognizerOutput:
    logits: Tensor
    """(batch, time_steps, num_classes), raw scores: CTC takes ``log_softmax`` of them in fp32."""
    features: Tensor
    """(batch, time_steps, 2 * lstm_hidden), the BiLSTM outputs (for the recognition-feature loss)."""
    trunk: list[Tensor]
    """The output of each conv block (the perceptual features of a frozen recognizer)."""


def ctc_time_steps(width_px: Any, width_downsampling: int) -> Any:
    """Time steps the recognizer gives a line ``width_px`` wide (an int or a tensor of widths).

    The one definition, used by the model, the CTC input lengths, decoding, the data checks and the
    diagnostics: the width divided by the width downsampling, rounded up (a batch's padding covers the rest).
    """
    return (width_px + width_downsampling - 1) // width_downsampling


class CrnnRecognizer(nn.Module):
    """Conv blocks (conv3x3 + BatchNorm + ReLU + max-pool), mean over height, BiLSTM, linear classifier."""

    def __init__(
        self,
        num_classes: int,
        conv_channels: list[int],
        width_downsampling: int,
        lstm_hidden: int,
        lstm_layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the CTC blank plus at least one symbol, got {num_classes}")
        if not conv_channels:
            raise ValueError("conv_channels needs at least one block")
        if width_downsampling < 1 or width_downsampling & (width_downsampling - 1):
            raise ValueError(f"width_downsampling must be a power of two, got {width_downsampling}")
        width_halvings = width_downsampling.bit_length() - 1
        if width_halvings > len(conv_channels):
            raise ValueError(
                f"width_downsampling {width_downsampling} needs {width_halvings} conv blocks, "
                f"conv_channels has {len(conv_channels)}"
            )
        self.num_classes = num_classes
        self.conv_channels = list(conv_channels)
        self.width_downsampling = width_downsampling
        self.lstm_hidden = lstm_hidden
        self.lstm_layers = lstm_layers
        self.dropout = dropout

        blocks = []
        in_channels = 1
        for index, out_channels in enumerate(conv_channels):
            pool = (2, 2) if index < width_halvings else (2, 1)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(inplace=True),
                    # ceil_mode: a height already down to 1 stays 1, so any line height works; widths are
                    # multiples of width_downsampling, so the width is halved exactly either way.
                    nn.MaxPool2d(kernel_size=pool, stride=pool, ceil_mode=True),
                )
            )
            in_channels = out_channels
        self.conv_blocks = nn.ModuleList(blocks)
        self.lstm = nn.LSTM(
            input_size=in_channels,
            hidden_size=lstm_hidden,
            num_layers=lstm_layers,
            batch_first=True,
            bidirectional=True,
            # PyTorch only applies LSTM dropout between layers; with one layer it would be ignored (and warn).
            dropout=dropout if lstm_layers > 1 else 0.0,
        )
        self.classifier_dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * lstm_hidden, num_classes)

    def forward(self, images: Tensor) -> RecognizerOutput:
        # images: (batch, 1, height, width), values in [0, 1], white paper = 1
        trunk = self.trunk_features(images)
        trunk_output = trunk[-1]  # (batch, channels, reduced_height, time_steps)
        # Averaging (not flattening) the rows keeps the LSTM input size independent of the line height.
        columns = trunk_output.mean(dim=2).transpose(1, 2)  # (batch, time_steps, channels)
        sequence, _ = self.lstm(columns)
        logits = self.classifier(self.classifier_dropout(sequence))
        return RecognizerOutput(logits=logits, features=sequence, trunk=trunk)

    def trunk_features(self, images: Tensor) -> list[Tensor]:
        """The output of each conv block, first to last (a perceptual feature extractor when frozen)."""
        # images: (batch, 1, height, width), values in [0, 1], white paper = 1
        self._check_images(images)
        # Inverted so that blank paper is 0, like the zeros the convolutions pad the borders with; otherwise
        # every border would look like a stroke of ink.
        features = 1.0 - images
        block_outputs = []
        for block in self.conv_blocks:
            features = block(features)
            block_outputs.append(features)
        return block_outputs

    def time_steps(self, widths: Tensor) -> Tensor:
        """CTC time steps of lines of these widths (in px)."""
        return ctc_time_steps(widths, self.width_downsampling)

    def _check_images(self, images: Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"expected images of shape (batch, 1, height, width), got {tuple(images.shape)}")
        width = images.shape[-1]
        if width % self.width_downsampling:
            raise ValueError(
                f"image width {width} is not a multiple of width_downsampling {self.width_downsampling}; "
                f"pad lines to a multiple of {self.width_downsampling} px"
            )
