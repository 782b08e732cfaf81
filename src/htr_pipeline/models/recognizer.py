"""The CTC text recognizer ``crnn``: conv blocks, a BiLSTM over the columns, a linear layer over the charset.

Optionally with the auxiliary "CTC shortcut" of Retsinas et al. (2022, "Best practices for a handwritten text
recognition system"): a 1-D convolution straight from the conv trunk's columns to the charset, trained with its
own CTC term so the trunk gets a short gradient path and leaves the all-blank plateau early. It is a training aid:
readings always come from the BiLSTM head.

It reads a line image and gives one distribution over ``num_classes`` (charset + blank at
:data:`htr_pipeline.charset.BLANK_INDEX`) per CTC time step; a line ``W`` px wide gives
:func:`ctc_time_steps` = ``ceil(W / width_downsampling)`` time steps, so data checks can know the time steps
without running the model. During GAN training it is frozen (unless ``training.recognizer_during_gan`` is
``fine_tune``) by :func:`htr_pipeline.models.freezing.frozen_for_input_gradients`: its BatchNorm uses running
statistics, so no sample of a batch affects another, and its BiLSTM stays differentiable on cuDNN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class RecognizerOutput:
    logits: Tensor
    """(batch, time_steps, num_classes), raw scores: CTC takes ``log_softmax`` of them in fp32."""
    features: Tensor
    """(batch, time_steps, 2 * lstm_hidden), the BiLSTM outputs (for the recognition-feature loss)."""
    trunk: list[Tensor]
    """The output of each conv block (the perceptual features of a frozen recognizer)."""
    shortcut_logits: Tensor | None = None
    """(batch, time_steps, num_classes) of the CTC shortcut head, or ``None`` without one."""


def ctc_time_steps(width_px: Any, width_downsampling: int) -> Any:
    """Time steps the recognizer gives a line ``width_px`` wide (an int or a tensor of widths).

    The one definition, used by the model, the CTC input lengths, decoding, the data checks and the
    diagnostics: the width divided by the width downsampling, rounded up (a batch's padding covers the rest).
    """
    return (width_px + width_downsampling - 1) // width_downsampling


class CrnnRecognizer(nn.Module):
    """Conv blocks (conv3x3 + BatchNorm + ReLU + max-pool), a pooling over the height (``column_pooling``: max or
    mean), BiLSTM, linear classifier; optionally a CTC shortcut head on the pooled columns."""

    def __init__(
        self,
        num_classes: int,
        conv_channels: list[int],
        width_downsampling: int,
        lstm_hidden: int,
        lstm_layers: int,
        dropout: float,
        column_pooling: str = "max",
        ctc_shortcut: bool = False,
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
        if column_pooling not in ("max", "mean"):
            raise ValueError(f"column_pooling must be 'max' or 'mean', got {column_pooling!r}")
        self.num_classes = num_classes
        self.column_pooling = column_pooling
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
        self.shortcut = nn.Conv1d(in_channels, num_classes, kernel_size=3, padding=1) if ctc_shortcut else None

    def forward(self, images: Tensor) -> RecognizerOutput:
        # images: (batch, 1, height, width), values in [0, 1], white paper = 1
        trunk = self.trunk_features(images)
        trunk_output = trunk[-1]  # (batch, channels, reduced_height, time_steps)
        # Pooling (not flattening) the rows keeps the LSTM input size independent of the line height; the max
        # keeps a stroke's response wherever it sits in the column, where the mean dilutes it with paper.
        pooled = trunk_output.amax(dim=2) if self.column_pooling == "max" else trunk_output.mean(dim=2)
        # pooled: (batch, channels, time_steps)
        # The BiLSTM and the heads run in fp32 whatever the autocast around them: autocast would run a cuDNN RNN
        # in fp16 (even under bf16, and without a loss scaler there), and the CTC must get logits that were never
        # rounded to 16 bits.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            pooled = pooled.float()
            sequence, _ = self.lstm(pooled.transpose(1, 2))  # (batch, time_steps, 2 * lstm_hidden)
            logits = self.classifier(self.classifier_dropout(sequence))
            shortcut_logits = self.shortcut(pooled).transpose(1, 2) if self.shortcut is not None else None
        return RecognizerOutput(logits=logits, features=sequence, trunk=trunk, shortcut_logits=shortcut_logits)

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
