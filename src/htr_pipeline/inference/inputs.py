"""The images of an inference folder: which files Pillow can read.

Each is read by :func:`htr_pipeline.data.images.read_grayscale` , so a scan
restored at inference is seen with exactly the grey levels the training lines were ingested with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

PILLOW_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot identify (``UnidentifiedImageError`` is an ``OSError``) or decode."""


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
