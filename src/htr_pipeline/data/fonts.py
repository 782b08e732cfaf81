"""Handwriting fonts for synthetic lines: the bundled ones or the installed ones, which characters each can draw."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fontTools.ttLib import TTFont, TTLibError
from PIL import ImageFont

logger = logging.getLogger(__name__)

FONTS_KEY = "data.sources[...].fonts"

HANDWRITING_FONT_FILES: frozenset[str] = frozenset(
    {
        # Debian fonts-dkg-handwriting
        "dkg.ttf",
        "dkgIt.ttf",
        "dkgBd.ttf",
        "dkgBI.ttf",
        # fonts-dancingscript
        "DancingScript-Regular.otf",
        "DancingScript-Bold.otf",
        # fonts-kaushanscript
        "KaushanScript-Regular.otf",
        # fonts-kristi
        "Kristi.ttf",
        # fonts-ecolier-court
        "Ecolier-court.ttf",
        # fonts-joscelyn
        "Joscelyn-Regular.otf",
    }
)
"""File names of the OFL handwriting fonts that ``fonts: system`` looks for."""

BUNDLED_FONTS_DIRECTORY = Path(__file__).parent / "bundled_fonts"
"""The handwriting fonts shipped inside the package, each with its licence (see the README there)."""

BUNDLED_FONT_FILES: tuple[str, ...] = (
    "Breip.ttf",
    "DancingScript-Bold.otf",
    "DancingScript-Regular.otf",
    "dkg.ttf",
    "dkgIt.ttf",
    "Ecolier-court.ttf",
    "KaushanScript-Regular.otf",
    "Kristi.ttf",
)
"""The files ``fonts: bundled`` uses, named one by one so that a stray file in the folder changes nothing."""

PILLOW_FONT_NAME = "Aileron-Regular (Pillow bundled)"


@dataclass(frozen=True)
class HandwritingFont:
    """A font file (``path``; ``None`` for Pillow's own font) and the code points its cmap maps."""

    name: str
    path: str | None
    codepoints: frozenset[int]

    def can_draw(self, text: str) -> bool:
        """Whether every character of ``text`` has a glyph; spaces always can be drawn."""
        return all(character == " " or ord(character) in self.codepoints for character in text)

    def load(self, size_px: int) -> ImageFont.FreeTypeFont:
        """The font at ``size_px`` pixels per em, loaded once per process for each (path, size)."""
        return load_font(self.path, size_px)


@functools.lru_cache(maxsize=256)
def load_font(path: str | None, size_px: int) -> ImageFont.FreeTypeFont:
    """The font file at ``path`` (``None``: Pillow's own font) at ``size_px`` pixels per em, cached."""
    # The basic layout engine: glyphs are drawn one at a time, so shaping is of no use, and this engine is
    # present in every Pillow build, so the pixels do not depend on whether libraqm is installed.
    if path is None:
        return ImageFont.load_default(size=size_px)
    return ImageFont.truetype(path, size_px, layout_engine=ImageFont.Layout.BASIC)


def pillow_font() -> HandwritingFont:
    """Pillow's own FreeType font (Aileron, a printed sans, ASCII only): the last resort for a line that no
    handwriting font of the source can draw."""
    font_bytes = ImageFont.load_default(size=16).font_bytes
    return HandwritingFont(PILLOW_FONT_NAME, None, _cmap_codepoints(io.BytesIO(font_bytes), PILLOW_FONT_NAME))


def bundled_fonts() -> list[HandwritingFont]:
    """The handwriting fonts shipped with the package, sorted by name: the same on every machine."""
    return sorted(
        (_font_from_file(BUNDLED_FONTS_DIRECTORY / file_name) for file_name in BUNDLED_FONT_FILES),
        key=lambda font: font.name,
    )


def find_handwriting_fonts(setting: Literal["bundled", "system"] | list[Path]) -> list[HandwritingFont]:
    """The fonts a synthetic source may use.

    ``"bundled"``: the fonts shipped with the package. ``"system"``: the known handwriting fonts installed on
    this machine, sorted by name, or the bundled ones when none is installed. A list of paths: exactly those
    files, in that order.
    """
    if setting == "bundled":
        return bundled_fonts()
    if setting == "system":
        return _find_system_fonts(_system_font_directories())
    return [_font_from_file(Path(path)) for path in setting]


def _system_font_directories() -> list[Path]:
    return [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        Path("~/.fonts").expanduser(),
        Path("~/.local/share/fonts").expanduser(),
    ]


def _find_system_fonts(directories: Sequence[Path]) -> list[HandwritingFont]:
    """Known handwriting fonts under ``directories`` (the first file of each name wins), else the bundled ones."""
    path_of_file_name: dict[str, Path] = {}
    for directory in directories:
        for path in _files_under(directory):
            if path.name in HANDWRITING_FONT_FILES:
                path_of_file_name.setdefault(path.name, path)
    fonts = sorted((_font_from_file(path) for path in path_of_file_name.values()), key=lambda font: font.name)
    if not fonts:
        logger.warning("no handwriting font is installed here (`%s: system`): using the bundled fonts", FONTS_KEY)
    return fonts or bundled_fonts()


def _files_under(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    # Sorted so that which copy of a duplicated file name wins does not depend on the file system.
    return sorted(path for path in directory.rglob("*") if path.is_file())


def _font_from_file(path: Path) -> HandwritingFont:
    if not path.is_file():
        raise FileNotFoundError(f"font file '{path}' does not exist; fix `{FONTS_KEY}` or set it to `bundled`")
    return HandwritingFont(path.stem, str(path), _cmap_codepoints(path, str(path)))


def _cmap_codepoints(font_file: Path | io.BytesIO, description: str) -> frozenset[int]:
    try:
        with _quiet_font_tools():
            cmap = TTFont(font_file, lazy=True).getBestCmap()
    except (TTLibError, OSError, AssertionError, KeyError) as error:
        raise ValueError(f"cannot read font '{description}' (`{FONTS_KEY}`): {error}") from error
    if not cmap:
        raise ValueError(f"font '{description}' (`{FONTS_KEY}`) has no Unicode character map")
    return frozenset(cmap)


@contextmanager
def _quiet_font_tools() -> Iterator[None]:
    # Some packaged fonts (Kristi) have harmless padding in their 'post' table that fontTools reports as a
    # warning on every read; it says nothing about which glyphs exist.
    font_tools_logger = logging.getLogger("fontTools")
    previous_level = font_tools_logger.level
    font_tools_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        font_tools_logger.setLevel(previous_level)
