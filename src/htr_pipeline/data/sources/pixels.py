"""Where a sample's pixels come from: a rendered line, an image file, a line cut from a page, encoded bytes.

:data:`Pixels` is a small tagged union (the class is the tag). Each member loads itself, so materialisation never
asks which one it holds. Lines cut from one page name that page (``shared_page``): materialisation hands them one
:class:`PageImages`, so the page is decoded once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from htr_pipeline.config import DataConfig
from htr_pipeline.data.images import UnreadableImageError, read_grayscale
from htr_pipeline.data.line_crops import LineCrop, crop_line
from htr_pipeline.data.synthetic import HandwritingStyle, SyntheticLinePlan, render_planned_line


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray
    """(height, width) uint8, 255 = paper, at the source's own size."""
    synthesis: dict[str, Any] | None = None
    """How a rendered line was drawn (font, style values drawn); ``None`` for an image the source holds."""


@dataclass
class PageImages:
    """The page images the lines of one work unit are cut from, each decoded once; a page that cannot be read
    fails the same way for each of its lines."""

    max_image_pixels: int
    _decoded: dict[str, np.ndarray | UnreadableImageError] = field(default_factory=dict)

    def read(self, path: str) -> np.ndarray:
        if path not in self._decoded:
            try:
                self._decoded[path] = read_grayscale(Path(path), self.max_image_pixels)
            except UnreadableImageError as error:
                self._decoded[path] = error
        page = self._decoded[path]
        if isinstance(page, UnreadableImageError):
            raise page
        return page


@dataclass(frozen=True)
class RenderedLine:
    """A synthetic line, drawn from its plan in the source's style (``synthetic``)."""

    plan: SyntheticLinePlan
    style: HandwritingStyle
    path = None
    shared_page = None

    def load(self, data: DataConfig, pages: PageImages) -> LoadedImage:
        pixels, synthesis = render_planned_line(self.plan, self.style, data.image_height, data.seed)
        return LoadedImage(pixels, synthesis)


@dataclass(frozen=True)
class ImageFile:
    """An image file of the source (``line_folder``, both images of a ``paired_folder`` pair)."""

    path: str
    shared_page = None

    def load(self, data: DataConfig, pages: PageImages) -> LoadedImage:
        return LoadedImage(read_grayscale(Path(self.path), data.max_image_pixels))


@dataclass(frozen=True)
class PageCrop:
    """A line cut from its page image (``xml_pages``)."""

    crop: LineCrop

    @property
    def path(self) -> str:
        return self.crop.page_path

    @property
    def shared_page(self) -> str:
        return self.crop.page_path

    def load(self, data: DataConfig, pages: PageImages) -> LoadedImage:
        return LoadedImage(crop_line(pages.read(self.crop.page_path), self.crop))


@dataclass(frozen=True)
class EncodedImage:
    """An encoded image held in the source itself (``parquet_lines``)."""

    encoded: bytes
    path: str
    """Where the bytes are: ``<file>.parquet#row=<n>``."""
    shared_page = None

    def load(self, data: DataConfig, pages: PageImages) -> LoadedImage:
        return LoadedImage(read_grayscale(self.encoded, data.max_image_pixels))


Pixels = RenderedLine | ImageFile | PageCrop | EncodedImage
"""Each member has ``path`` (the file a reject of the sample names, or ``None``), ``shared_page`` (the page image
several samples are cut from, or ``None``) and ``load``."""
