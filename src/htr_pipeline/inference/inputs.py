"""The images of an inference folder: which files Pillow can read, and each one as 8-bit grayscale.

Reading reuses :func:`htr_pipeline.data.images.read_grayscale`, so a scan restored at inference is seen with
exactly the grey levels the training lines were ingested with. Only the modes that function does not scale
(32-bit integers beyond the 16-bit range, and floats) are handled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from htr_pipeline.data import images

PILLOW_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot identify (``UnidentifiedImageError`` is an ``OSError``) or decode."""

SIXTEEN_BIT_MAX = 65535


@dataclass(frozen=True)
class SkippedInput:
    """A file of the input folder that is not restored, and why."""

    path: str
    reason: str


def output_name(path: Path) -> str:
    """The name the outputs of an input share (``restored/<name>.png``, ``comparison/<name>.png``, ...): a PNG
    keeps its stem (``a.png`` -> ``a``), any other file its whole name (``a.jpg`` -> ``a.jpg``), so ``a.png``
    and ``a.jpg`` side by side never write one file."""
    return path.stem if path.suffix.lower() == ".png" else path.name


def list_input_images(folder: Path) -> tuple[list[Path], list[SkippedInput]]:
    """The readable images of ``folder`` (sorted, not recursive, hidden files ignored) and what is skipped:
    unreadable files, subfolders, and a file whose output name an earlier one already has.

    Each file is fully decoded once: ``verify()`` alone does not catch a truncated JPEG, and a decoding error
    found now is a skipped file in the report rather than a failed run after hours of restoring.
    """
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"inference input folder {folder} {what}; set inference.input_path to a folder")
    readable: list[Path] = []
    skipped: list[SkippedInput] = []
    owner_of_name: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            reason = "a folder: inference reads the images directly in inference.input_path, not in subfolders"
        elif (owner := owner_of_name.get(output_name(path))) is not None:
            reason = f"its outputs would be named {output_name(path)}.png, as those of {owner.name}"
        else:
            reason = _why_unreadable(path) if path.is_file() else "not a regular file"
        if reason is None:
            readable.append(path)
            owner_of_name[output_name(path)] = path
        else:
            skipped.append(SkippedInput(path=str(path), reason=reason))
    return readable, skipped


def _why_unreadable(path: Path) -> str | None:
    try:
        with Image.open(path) as opened:
            opened.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read: cannot identify image file"
    except PILLOW_READ_ERRORS as error:
        return f"an image Pillow cannot decode: {type(error).__name__}: {error}"
    return None


def read_grayscale(path: Path) -> np.ndarray:
    """Any image Pillow reads as (height, width) uint8, 255 = white paper, EXIF orientation applied.

    Scaling to 8 bits, by mode:
    - L, RGB, CMYK, P, 1: Pillow's own conversion to L; transparency (RGBA, LA, PA, P with a transparent
      colour) is composited onto white paper, so transparent background does not turn into black ink.
    - I;16 / I;16B, and I whose values fit in 16 bits (Pillow opens some 16-bit PNGs as I): the dtype's full
      range, 0..65535 to 0..255, as at ingestion (which treats a file whose values all fit in 0..255 as 8-bit
      data in a wide container).
    - I beyond 0..65535 (32-bit TIFFs): the image's own min..max, as a 32-bit full range would make any real
      scan a single grey.
    - F: values within [0, 1] are fractions of white; anything else is stretched over its own min..max.

    Raises :class:`htr_pipeline.data.images.UnreadableImageError` for a file Pillow cannot read.
    """
    image = _open_wide_image(path)
    if image is None:
        return images.read_grayscale(path)
    # values: (height, width) from int32 or float32
    values = np.asarray(image, dtype=np.float64)
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    lowest, highest = float(values.min()), float(values.max())
    if image.mode == "I" and lowest >= 0 and highest <= SIXTEEN_BIT_MAX:
        return images.read_grayscale(path)
    if image.mode == "F" and lowest >= 0.0 and highest <= 1.0:
        return _to_uint8(values * 255.0)
    return _stretch_to_uint8(values, lowest, highest)


def _open_wide_image(path: Path) -> Image.Image | None:
    """The decoded, EXIF-rotated image if its mode is 32-bit I or F; None (header read only) for any other."""
    try:
        with Image.open(path) as opened:
            if opened.mode not in ("I", "F"):
                return None
            opened.load()
            return ImageOps.exif_transpose(opened)
    except PILLOW_READ_ERRORS as error:
        raise images.UnreadableImageError(f"{path}: cannot read image ({error})") from None


def _stretch_to_uint8(values: np.ndarray, lowest: float, highest: float) -> np.ndarray:
    """Map ``lowest..highest`` to 0..255; a constant image keeps its value, clipped to 0..255."""
    # values: (height, width) float64
    if highest == lowest:
        return _to_uint8(values)
    return _to_uint8((values - lowest) / (highest - lowest) * 255.0)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)
