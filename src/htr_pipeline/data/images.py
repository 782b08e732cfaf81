"""Reading any image Pillow understands as 8-bit grayscale, and normalising lines to the model height."""

from __future__ import annotations

import io
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


def read_grayscale(path: Path | bytes, max_pixels: int | None = None, stretch_wide_values: bool = False) -> np.ndarray:
    """Any Pillow-readable image (a file, or its encoded bytes) as (height, width) uint8, 255 = white.

    EXIF rotation is applied; 16-bit images are scaled to 8 bits; transparent pixels are composited on white
    paper. Only pixels come back: ICC profile and metadata stay behind. An image with more than ``max_pixels``
    pixels (read from its header, before decoding) raises :class:`ImageTooLargeError`, as does one beyond
    Pillow's limit (2 x ``Image.MAX_IMAGE_PIXELS``), which is left as it is for all other code.

    Scaling to 8 bits, by mode:
    - L, RGB, CMYK, P, 1: Pillow's own conversion to L; transparency (RGBA, LA, PA, P with a transparent
      colour) is composited onto white paper, so transparent background does not turn into black ink.
    - I;16 / I;16B, and I whose values fit in 16 bits (Pillow opens some 16-bit PNGs as I): the dtype's full
      range, 0..65535 to 0..255 (a file whose values all fit in 0..255 is 8-bit data in a wide container).
    - With ``stretch_wide_values`` (inference, whose scans come as they are): I beyond 0..65535 (32-bit TIFFs)
      is stretched over the image's own min..max, as a 32-bit full range would make any real scan a single
      grey; F within [0, 1] is read as fractions of white, any other F range is stretched over its min..max.
      Without (ingestion, as it has always read them): such I values are clipped at 65535 and F goes through
      Pillow's conversion to L.
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
                image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{where}: too large for Pillow to open ({error})") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageTooLargeError):
            raise
        raise UnreadableImageError(f"{where}: cannot read image ({error})") from None
    if stretch_wide_values and image.mode in ("I", "F"):
        stretched = _stretched_wide_values(image)
        if stretched is not None:
            return stretched
    return _to_uint8_gray(image)


def _stretched_wide_values(image: Image.Image) -> np.ndarray | None:
    """A 32-bit integer or float image scaled to 8 bits; None for an I image within 16 bits (scaled as such)."""
    # values: (height, width) from int32 or float32
    values = np.asarray(image, dtype=np.float64)
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    lowest, highest = float(values.min()), float(values.max())
    if image.mode == "I" and lowest >= 0 and highest <= SIXTEEN_BIT_MAX:
        return None
    if image.mode == "F" and lowest >= 0.0 and highest <= 1.0:
        return _rounded_uint8(values * 255.0)
    if highest == lowest:
        # A constant image keeps its value, clipped to 0..255.
        return _rounded_uint8(values)
    return _rounded_uint8((values - lowest) / (highest - lowest) * 255.0)


def _rounded_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _to_uint8_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        peak = float(SIXTEEN_BIT_MAX) if wide.max(initial=0) > 255 else 255.0
        return _rounded_uint8(wide / peak * 255.0)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


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
