"""Reading any image Pillow understands as 8-bit grayscale, and normalising lines to the model height."""

from __future__ import annotations

import io
import math
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})


class UnreadableImageError(ValueError):
    """The file is missing, not an image, or truncated."""


class ImageTooLargeError(UnreadableImageError):
    """The image has more pixels than allowed: ``max_pixels``, or Pillow's own decompression-bomb limit."""


SIXTEEN_BIT_MAX = 65535


DECODE_BAND_ROWS = 256
"""Rows converted to 8 bits at a time: a wide type's float copy never holds more than one band."""


def read_grayscale(path: Path | bytes, max_pixels: int | None = None) -> np.ndarray:
    """Any Pillow-readable image (a file, or its encoded bytes) as (height, width) uint8, 255 = white.

    EXIF rotation is applied; transparent pixels are composited on white paper. Only pixels come back: ICC
    profile and metadata stay behind. An image with more than ``max_pixels`` pixels (read from its header, before
    decoding) raises :class:`ImageTooLargeError`, as does one beyond Pillow's limit (2 x ``Image.MAX_IMAGE_PIXELS``),
    which is left as it is for all other code.

    Scaling to 8 bits, by mode (every mode Pillow opens):
    - L, RGB, CMYK, YCbCr, LAB, HSV, P, 1: Pillow's own conversion to L; transparency (RGBA, LA, PA, P with a
      transparent colour) is composited onto white paper, so transparent background does not turn into black ink.
    - I;16 / I;16B / I;16L, and I whose values lie in 0..65535: the dtype's full range, 0..65535 to 0..255 (a file
      whose values all fit in 0..255 is 8-bit data in a wide container).
    - I beyond 0..65535 (32-bit integer TIFFs) is stretched over the image's own min..max, since a 32-bit full range
      would make any real scan a single grey; F (32-bit float) within [0, 1] is read as fractions of white, any
      other F range is stretched over its min..max. A constant image keeps its value, clipped to 0..255.

    Memory: the decoded image (1 byte per pixel in L, 2 in I;16, 4 in RGB(A), I and F) plus the 8-bit result (1
    byte per pixel), converted :data:`DECODE_BAND_ROWS` rows at a time: at most 6 bytes per pixel, 600 MB at
    ``data.max_image_pixels`` = 100 M, for every bit depth.
    """
    if isinstance(path, bytes):
        path = io.BytesIO(path)
    where = f"{len(path.getvalue())} encoded bytes" if isinstance(path, io.BytesIO) else path
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:
                # Our own limit is checked below; Pillow's warning between its two limits would only repeat it.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{where}: {width} x {height} px = {width * height:,} pixels > "
                        f"data.max_image_pixels={max_pixels:,}"
                    )
                opened.load()
                ImageOps.exif_transpose(opened, in_place=True)  # replaces the pixels only when EXIF turns them
                return _to_uint8_gray(opened)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{where}: too large for Pillow to open ({error})") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageTooLargeError):
            raise
        raise UnreadableImageError(f"{where}: cannot read image ({error})") from None


def _to_uint8_gray(image: Image.Image) -> np.ndarray:
    """(height, width) uint8 of any mode, a band of rows at a time (see :func:`read_grayscale`)."""
    width, height = image.size
    gray = np.empty((height, width), dtype=np.uint8)
    convert = _wide_values_to_uint8(image) if image.mode.startswith(("I", "F")) else _mode_to_uint8
    for top in range(0, height, DECODE_BAND_ROWS):
        band = image.crop((0, top, width, min(height, top + DECODE_BAND_ROWS)))
        gray[top : top + band.height] = convert(band)
    return gray


def _mode_to_uint8(band: Image.Image) -> np.ndarray:
    if band.mode == "P" and "transparency" in band.info:
        band = band.convert("RGBA")
    if band.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        paper = Image.new("RGBA", band.size, (255, 255, 255, 255))
        band = Image.alpha_composite(paper, band.convert("RGBA"))
    return np.asarray(band.convert("L"), dtype=np.uint8)


def _wide_values_to_uint8(image: Image.Image) -> typing.Callable[[Image.Image], np.ndarray]:
    """How a band of a 16-bit, 32-bit integer or float image becomes 8 bits, from the whole image's extrema."""
    lowest, highest = _finite_extrema(image)
    if image.mode != "F" and lowest >= 0 and highest <= SIXTEEN_BIT_MAX:
        peak = float(SIXTEEN_BIT_MAX) if highest > 255 else 255.0
        return lambda band: _rounded_uint8(np.asarray(band, dtype=np.float64) / peak * 255.0)
    if image.mode == "F" and lowest >= 0.0 and highest <= 1.0:
        return lambda band: _rounded_uint8(np.asarray(band, dtype=np.float64) * 255.0)
    if highest == lowest:
        return lambda band: _rounded_uint8(np.nan_to_num(np.asarray(band, dtype=np.float64)))
    return lambda band: _rounded_uint8((np.asarray(band, dtype=np.float64) - lowest) / (highest - lowest) * 255.0)


def _finite_extrema(image: Image.Image) -> tuple[float, float]:
    """The smallest and largest finite value, a band at a time (Pillow's ``getextrema`` refuses I;16B)."""
    lowest, highest = math.inf, -math.inf
    for top in range(0, image.height, DECODE_BAND_ROWS):
        values = np.asarray(image.crop((0, top, image.width, min(image.height, top + DECODE_BAND_ROWS))))
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size:
            lowest, highest = min(lowest, float(finite.min())), max(highest, float(finite.max()))
    return (lowest, highest) if lowest <= highest else (0.0, 0.0)


def _rounded_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class NormalisedLine:
    # image: (image_height, width) uint8
    image: np.ndarray
    width_scale: float
    """Horizontal scale applied on top of the height scaling: 1.0 unless the line was wider than max_width."""


def normalise_line(image: np.ndarray, image_height: int, max_width: int) -> NormalisedLine:
    """Resize to ``image_height`` rows keeping the aspect ratio; squeeze lines wider than ``max_width``."""
    # image: (height, width) uint8
    height, width = image.shape
    width_at_height = max(1, round(width * image_height / height))
    target_width = min(width_at_height, max_width)
    if (height, width) == (image_height, target_width):
        return NormalisedLine(image=image, width_scale=1.0)
    resized = Image.fromarray(image).resize((target_width, image_height), Image.Resampling.LANCZOS)
    return NormalisedLine(image=np.asarray(resized), width_scale=target_width / width_at_height)
