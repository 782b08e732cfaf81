"""Turning sample candidates into normalised clean/degraded image pairs and manifest rows.

Each sample is handled on its own with randomness from :func:`rng_for`, so the result does not depend on the
number of worker processes or their order. Lines cut from one page image travel together, so the page is
decoded once for all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from htr_pipeline.config import DataConfig
from htr_pipeline.data.images import ImageTooLargeError, UnreadableImageError, normalise_line
from htr_pipeline.data.paper import remove_paper
from htr_pipeline.data.real_paper import PaperLibrary, read_paper_library, synthesise_degraded
from htr_pipeline.data.sources.pixels import PageImages
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate, unexpected_error
from htr_pipeline.progress import tqdm

MANIFEST_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "source",
    "source_kind",
    "split",
    "group",
    "image_type",
    "transcription",
    "degraded_path",
    "clean_path",
    "width",
    "height",
    "original_width",
    "original_height",
    "width_scale",
    "degraded_origin",
    "degradation_recipe",
    "paper_page",
    "synthesis",
    "origin",
    "text_changes",
)
"""Image paths are relative to the ``line_images`` folder of the same ingestion run."""


@dataclass(frozen=True)
class MaterialisedSample:
    # clean, degraded: (height, width) uint8, 255 = paper
    clean: np.ndarray
    degraded: np.ndarray
    manifest_row: dict[str, Any]


def materialise_all(
    candidates: Sequence[SampleCandidate], data: DataConfig
) -> tuple[list[MaterialisedSample], list[Reject]]:
    """Materialise every candidate (in ``data.num_workers`` processes, a page at a time), with a progress bar.

    With ``data.real_paper`` the paper of every page is read first (rejects for pages that cannot give it), and
    each worker process receives it once.
    """
    paper, rejects = None, []
    if data.real_paper is not None:
        paper, rejects = read_paper_library(
            data.real_paper, data.seed, data.split_fractions, data.max_image_pixels, data.num_workers
        )
        paper.check_covers(sorted({c.split for c in candidates if c.split and c.degraded_pixels is None}))
    units = work_units(candidates)
    progress = partial(tqdm, total=len(units), desc="ingest lines and pages", unit="unit")
    if data.num_workers == 1:
        work = partial(materialise_unit, data=data, paper=paper)
        results: Iterator[list[MaterialisedSample | Reject]] = map(work, units)
        outcomes = [outcome for unit in progress(results) for outcome in unit]
    else:
        in_worker = partial(_materialise_unit_in_worker, data=data)
        with ProcessPoolExecutor(data.num_workers, initializer=_hold_paper_library, initargs=(paper,)) as pool:
            outcomes = [outcome for unit in progress(pool.map(in_worker, units, chunksize=4)) for outcome in unit]
    samples = [outcome for outcome in outcomes if isinstance(outcome, MaterialisedSample)]
    rejects += [outcome for outcome in outcomes if isinstance(outcome, Reject)]
    return samples, rejects


_paper_of_this_worker: PaperLibrary | None = None
"""The real paper a worker process composes on, handed over once when the process starts, not with every unit."""


def _hold_paper_library(paper: PaperLibrary | None) -> None:
    global _paper_of_this_worker
    _paper_of_this_worker = paper


def _materialise_unit_in_worker(unit: list[SampleCandidate], data: DataConfig) -> list[MaterialisedSample | Reject]:
    return materialise_unit(unit, data, _paper_of_this_worker)


def work_units(candidates: Sequence[SampleCandidate]) -> list[list[SampleCandidate]]:
    """The lines of one page image together (in their order), every other candidate on its own."""
    by_page: dict[str, list[SampleCandidate]] = {}
    units: list[list[SampleCandidate]] = []
    for candidate in candidates:
        page = candidate.clean_pixels.shared_page
        if page is None:
            units.append([candidate])
            continue
        if page not in by_page:
            by_page[page] = []
            units.append(by_page[page])
        by_page[page].append(candidate)
    return units


def materialise_unit(
    unit: list[SampleCandidate], data: DataConfig, paper: PaperLibrary | None = None
) -> list[MaterialisedSample | Reject]:
    """One candidate, or all lines of one page from a single decode of it."""
    pages = PageImages(data.max_image_pixels)
    return [_bounded_sample(candidate, data, pages, paper) for candidate in unit]


def _bounded_sample(
    candidate: SampleCandidate, data: DataConfig, pages: PageImages, paper: PaperLibrary | None
) -> MaterialisedSample | Reject:
    """:func:`materialise_sample`; a sample that fails in a way no check foresaw is its own reject."""
    try:
        return materialise_sample(candidate, data, pages, paper)
    except Exception as error:  # the boundary of one sample: the others of its page go on
        return unexpected_error(candidate.source, candidate.sample_id, candidate.path, error)


def materialise_sample(
    candidate: SampleCandidate,
    data: DataConfig,
    pages: PageImages | None = None,
    paper: PaperLibrary | None = None,
) -> MaterialisedSample | Reject:
    """Load the clean image (read, rendered or cut from a page of ``pages``) and the degraded one if the source has
    it, else synthesise it (on ``paper`` when ``data.real_paper`` is set); normalise both."""
    pages = pages if pages is not None else PageImages(data.max_image_pixels)
    if too_long := _name_too_long(candidate):
        return _reject(candidate, RejectReason.NAME_TOO_LONG, too_long)
    try:
        clean = candidate.clean_pixels.load(data, pages)
        degraded_source = candidate.degraded_pixels.load(data, pages).pixels if candidate.degraded_pixels else None
    except UnreadableImageError as error:
        return _reject(candidate, _unreadable_reason(error), str(error))
    clean_source = clean.pixels
    original_height, original_width = clean_source.shape
    if original_height < data.min_source_height_px or original_width < data.min_source_width_px:
        return _reject(
            candidate,
            RejectReason.IMAGE_TOO_SMALL,
            f"{original_width} x {original_height} px is below data.min_source_width_px="
            f"{data.min_source_width_px} x data.min_source_height_px={data.min_source_height_px}",
        )
    for role, pixels in (("clean", clean_source), ("degraded", degraded_source)):
        if pixels is not None and (blank := _blank(pixels)):
            return _reject(candidate, RejectReason.BLANK_IMAGE, f"the {role} image is {blank}")
    if degraded_source is not None and degraded_source.shape != clean_source.shape:
        return _reject(
            candidate,
            RejectReason.SIZE_MISMATCH,
            f"degraded {degraded_source.shape[::-1]} vs clean {clean_source.shape[::-1]} (width, height)",
        )
    if degraded_source is None and clean.synthesis is None and data.clean_scans == "paper_removed":
        clean_source = remove_paper(clean_source)
    normalised_clean, degraded, width_scale = _normalise_pair(candidate, clean_source, degraded_source, data)
    recipe: list[dict[str, Any]] | None = None
    paper_page = None
    if degraded is None:
        synthesised = synthesise_degraded(
            normalised_clean, candidate.sample_id, candidate.split, data.seed, data.degradations, data.real_paper, paper
        )
        degraded, recipe, paper_page = synthesised.degraded, synthesised.recipe, synthesised.paper_page
        normalised_clean = synthesised.clean
    row = _manifest_row(
        candidate, normalised_clean, original_width, original_height, width_scale, recipe, paper_page, clean.synthesis
    )
    return MaterialisedSample(clean=normalised_clean, degraded=degraded, manifest_row=row)


MIN_INK_CONTRAST = 8
"""Grey levels between an image's darkest and lightest pixel below which it holds nothing to read (blank)."""
MAX_NAME_BYTES = 255
"""The longest file name (one path part, in UTF-8 bytes) that Linux, macOS and Windows file systems accept."""


def _blank(pixels: np.ndarray) -> str | None:
    """Why an image would be stored without content (one grey level, or nearly), else None."""
    # pixels: (height, width) uint8
    darkest, lightest = int(pixels.min()), int(pixels.max())
    if lightest - darkest >= MIN_INK_CONTRAST:
        return None
    if lightest == darkest:
        return f"one grey level ({darkest}): nothing to read, kept it would teach a blank line this text"
    return f"grey levels {darkest}..{lightest} (< {MIN_INK_CONTRAST} apart): nothing to read"


def _name_too_long(candidate: SampleCandidate) -> str | None:
    """Why the sample's image file names would be refused by the file system, else None."""
    for part in _image_name(candidate).split("/"):
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            return (
                f"its image would be named {part[:40]!r}... ({size} bytes); file names hold at most "
                f"{MAX_NAME_BYTES} bytes: shorten the file name or XML line id"
            )
    return None


def _image_name(candidate: SampleCandidate) -> str:
    """``<source>/<id>.png``: where the sample's clean and degraded images are saved in ``line_images``."""
    return f"{_output_path(candidate.source)}/{_output_path(candidate.sample_id.split(':', 1)[-1])}.png"


def _unreadable_reason(error: UnreadableImageError) -> RejectReason:
    return RejectReason.IMAGE_TOO_LARGE if isinstance(error, ImageTooLargeError) else RejectReason.UNREADABLE_IMAGE


def _normalise_pair(
    candidate: SampleCandidate, clean: np.ndarray, degraded: np.ndarray | None, data: DataConfig
) -> tuple[np.ndarray, np.ndarray | None, float]:
    if candidate.image_type == "page":
        return clean, degraded, 1.0
    normalised_clean = normalise_line(clean, data.image_height, data.max_width)
    normalised_degraded = (
        normalise_line(degraded, data.image_height, data.max_width).image if degraded is not None else None
    )
    return normalised_clean.image, normalised_degraded, normalised_clean.width_scale


def _manifest_row(
    candidate: SampleCandidate,
    clean: np.ndarray,
    original_width: int,
    original_height: int,
    width_scale: float,
    recipe: list[dict[str, Any]] | None,
    paper_page: str | None,
    synthesis: dict[str, Any] | None,
) -> dict[str, Any]:
    name = _image_name(candidate)
    height, width = clean.shape
    return {
        "sample_id": candidate.sample_id,
        "source": candidate.source,
        "source_kind": candidate.source_kind,
        "split": candidate.split,
        "group": candidate.group,
        "image_type": candidate.image_type,
        "transcription": candidate.transcription,
        "degraded_path": f"degraded/{name}",
        "clean_path": f"clean/{name}",
        "width": width,
        "height": height,
        "original_width": original_width,
        "original_height": original_height,
        "width_scale": width_scale,
        "degraded_origin": "synthesised" if recipe is not None else "source",
        "degradation_recipe": json.dumps(recipe) if recipe is not None else None,
        "paper_page": paper_page,
        "synthesis": json.dumps(synthesis) if synthesis is not None else None,
        "origin": candidate.origin,
        "text_changes": candidate.text_changes,
    }


def _output_path(name: str) -> str:
    """A relative path made of the name's parts, with ``..``, ``.`` and empty parts (a leading ``/``) escaped,
    so that no file name or XML line id from a source can point outside the output folder."""
    parts = re.split(r"[\\/]", name)
    return "/".join(part.replace(".", "%2E") if part in (".", "..") else part or "%" for part in parts)


def _reject(candidate: SampleCandidate, reason: RejectReason, detail: str) -> Reject:
    return Reject(candidate.source, candidate.sample_id, candidate.path, reason, detail)
