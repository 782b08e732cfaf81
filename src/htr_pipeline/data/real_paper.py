"""Clean lines composed on real paper: the pages of the user's scans, split by document, cut into patches.

:func:`read_paper_library` reads every page of ``data.real_paper.folders`` once, takes its paper and its ink
(:mod:`htr_pipeline.data.paper`) and gives each page a split, whole documents at a time, so that the paper of a
valid or test page never reaches a train sample. :func:`synthesise_degraded` then makes a sample's degraded
image: with ``real_paper.probability`` it composes the clean line on a patch of a page of the sample's own split,
the way ink sits on paper (the ink's coverage multiplies the paper's brightness, as the page's own ink does),
with bleed-through of real ink from another part of a page of that split (mirrored, blurred, faint) and uneven
ink fading; the ``data.degradations`` follow on top, except the three kinds the composition replaces.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from htr_pipeline.config import SPLIT_NAMES, Degradations, PaperFolder, RealPaperConfig, SplitFractions
from htr_pipeline.data.degradations import degrade, smooth_random_field
from htr_pipeline.data.images import IMAGE_SUFFIXES, ImageTooLargeError, UnreadableImageError, read_grayscale
from htr_pipeline.data.paper import PaperError, PaperPage, cut_patch, paper_from_pair, paper_from_scan
from htr_pipeline.data.seeding import rng_for
from htr_pipeline.data.sources import Reject, RejectReason
from htr_pipeline.data.splits import assign_unsplit_groups
from htr_pipeline.progress import tqdm

REPLACED_BY_REAL_PAPER: frozenset[str] = frozenset({"paper_texture", "bleed_through", "ink_fading"})
"""Kinds of ``data.degradations`` not applied to a sample composed on real paper: the composition's own paper,
bleed-through and fading take their place."""

INK_ABSORPTION_SPREAD = (0.75, 1.15)
"""The line's ink darkens the paper as the page's own ink does, times a factor drawn from this range."""


class RealPaperError(ValueError):
    """Real paper cannot be used as configured (a missing folder, no page, a split without pages)."""


# --------------------------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class ScannedPage:
    """One page of a paper folder before it is read: its scan, and its ground truth for ``page_pairs``."""

    page_id: str
    folder: PaperFolder
    scan_path: Path
    ground_truth_path: Path | None
    group: str


@dataclass(frozen=True)
class PaperLibrary:
    """The pages of every paper folder, each in one split, at their working scale."""

    pages_by_split: Mapping[str, tuple[PaperPage, ...]]
    split_of_page: Mapping[str, str] = field(default_factory=dict)

    def pages(self, split: str) -> tuple[PaperPage, ...]:
        return self.pages_by_split.get(split, ())

    def check_covers(self, splits: Sequence[str]) -> None:
        """Every split in ``splits`` (those with samples to compose) has at least one page."""
        bare = [split for split in SPLIT_NAMES if split in splits and not self.pages(split)]
        if bare:
            counts = {split: len(self.pages(split)) for split in SPLIT_NAMES}
            raise RealPaperError(
                f"data.real_paper: split(s) {', '.join(bare)} have samples to compose but no paper page (pages per "
                f"split: {counts}). Add pages to data.real_paper.folders (a split gets whole documents, at least "
                "one page each once there are three), or change data.split_fractions."
            )


def list_paper_pages(folder: PaperFolder, position: int) -> tuple[list[ScannedPage], list[Reject]]:
    """The pages of one folder that ``include`` keeps, as its kind lists them, with the scans it rejects."""
    root = Path(folder.path)
    if not root.is_dir():
        raise RealPaperError(
            f"data.real_paper.folders[{position}].path: folder '{root}' (resolved: '{root.resolve()}') does not "
            f"exist. Fix the path, or remove the '{folder.name}' folder."
        )
    scans_dir = root / "images" if (root / "images").is_dir() else root
    scans = [path for path in _image_files(scans_dir) if folder.include is None or re.search(folder.include, path.name)]
    return PAPER_FOLDER_KINDS[folder.kind](folder, root, scans)


def _pages_with_ground_truth(
    folder: PaperFolder, root: Path, scans: list[Path]
) -> tuple[list[ScannedPage], list[Reject]]:
    """``page_pairs``: each scan with its ground truth from ``gt/``; a scan without one is rejected."""
    truths = _ground_truths_by_stem(root / "gt")
    pages, rejects = [], []
    for scan_path in scans:
        page_id = f"{folder.name}:{scan_path.stem}"
        truth = truths.get(scan_path.stem)
        if truth is None:
            detail = f"no ground truth gt/{scan_path.stem}_gt.* or gt/{scan_path.stem}.* for this page_pairs scan"
            rejects.append(Reject(folder.name, page_id, str(scan_path), RejectReason.MISSING_CLEAN_IMAGE, detail))
            continue
        pages.append(ScannedPage(page_id, folder, scan_path, truth, _group_of(scan_path.name, folder, page_id)))
    return pages, rejects


def _pages_without_ground_truth(
    folder: PaperFolder, root: Path, scans: list[Path]
) -> tuple[list[ScannedPage], list[Reject]]:
    """``page_scans``: every scan, its ink to be estimated."""
    pages = []
    for scan_path in scans:
        page_id = f"{folder.name}:{scan_path.stem}"
        pages.append(ScannedPage(page_id, folder, scan_path, None, _group_of(scan_path.name, folder, page_id)))
    return pages, []


PAPER_FOLDER_KINDS: dict[str, Callable[[PaperFolder, Path, list[Path]], tuple[list[ScannedPage], list[Reject]]]] = {
    "page_pairs": _pages_with_ground_truth,
    "page_scans": _pages_without_ground_truth,
}
"""How each kind of paper folder lists its pages: one entry per ``PaperFolder.kind``."""
assert set(PAPER_FOLDER_KINDS) == set(typing.get_args(PaperFolder.model_fields["kind"].annotation))


def ground_truth_pairs(root: Path, include: str | None) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``(stem, scan, ground truth)`` of a DIBCO-style folder (``images/`` + ``gt/``) whose scan names match
    ``include``, and the scans without a ground truth, by name."""
    truths = _ground_truths_by_stem(root / "gt")
    pairs, missing = [], []
    for scan_path in _image_files(root / "images"):
        if include is not None and not re.search(include, scan_path.name):
            continue
        truth = truths.get(scan_path.stem)
        if truth is None:
            missing.append(scan_path.name)
        else:
            pairs.append((scan_path.stem, scan_path, truth))
    return pairs, missing


def read_paper_library(
    settings: RealPaperConfig, seed: int, fractions: SplitFractions, max_pixels: int, workers: int = 1
) -> tuple[PaperLibrary, list[Reject]]:
    """Every page's paper (``workers`` processes), each page in one split, and the pages that could not be used."""
    listed, rejects = [], []
    for position, folder in enumerate(settings.folders):
        pages, folder_rejects = list_paper_pages(folder, position)
        listed += pages
        rejects += folder_rejects
    if not listed:
        raise RealPaperError(
            "data.real_paper: no page to take paper from in "
            + ", ".join(
                f"'{folder.path}'" + (f" (include {folder.include!r})" if folder.include else "")
                for folder in settings.folders
            )
            + f"; {len(rejects)} scan(s) were rejected. Point the folders at page scans, or widen `include`."
        )
    read = partial(read_paper_page, max_pixels=max_pixels)
    progress = partial(tqdm, total=len(listed), desc="take paper from pages", unit="page")
    if workers == 1:
        outcomes = list(progress(map(read, listed)))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = list(progress(pool.map(read, listed)))
    read_pages = [
        (page, outcome) for page, outcome in zip(listed, outcomes, strict=True) if isinstance(outcome, PaperPage)
    ]
    rejects += [outcome for outcome in outcomes if isinstance(outcome, Reject)]
    split_of_group = assign_page_groups([page.group for page, _ in read_pages], fractions, seed)
    by_split: dict[str, list[PaperPage]] = {split: [] for split in SPLIT_NAMES}
    split_of_page = {}
    for page, paper in read_pages:
        split = split_of_group[page.group]
        by_split[split].append(paper)
        split_of_page[paper.page_id] = split
    return PaperLibrary({split: tuple(pages) for split, pages in by_split.items()}, split_of_page), rejects


def read_paper_page(page: ScannedPage, max_pixels: int) -> PaperPage | Reject:
    """One page's paper and ink at its folder's scale, or a reject that says why not."""
    try:
        scan = read_grayscale(page.scan_path, max_pixels)
        if page.ground_truth_path is None:
            return paper_from_scan(page.page_id, scan, page.folder.scale)
        truth = read_grayscale(page.ground_truth_path, max_pixels)
        if truth.shape != scan.shape:
            return Reject(
                page.folder.name,
                page.page_id,
                str(page.scan_path),
                RejectReason.SIZE_MISMATCH,
                f"scan {scan.shape[::-1]} vs ground truth {truth.shape[::-1]} (width, height)",
            )
        return paper_from_pair(page.page_id, scan, truth, page.folder.scale)
    except UnreadableImageError as error:
        reason = (
            RejectReason.IMAGE_TOO_LARGE if isinstance(error, ImageTooLargeError) else RejectReason.UNREADABLE_IMAGE
        )
        return Reject(page.folder.name, page.page_id, str(page.scan_path), reason, str(error))
    except PaperError as error:
        return Reject(page.folder.name, page.page_id, str(page.scan_path), RejectReason.IMAGE_TOO_SMALL, str(error))


def assign_page_groups(groups: Sequence[str], fractions: SplitFractions, seed: int) -> dict[str, str]:
    """A split for every group of pages, by ``fractions`` and ``seed``; once there are three groups or more, no
    split is left without one (the largest split gives up its last group)."""
    split_of_group = assign_unsplit_groups(groups, fractions.model_dump(), seed)
    members: dict[str, list[str]] = {split: [] for split in SPLIT_NAMES}
    for group in sorted(split_of_group):
        members[split_of_group[group]].append(group)
    for split in SPLIT_NAMES:
        largest = max(SPLIT_NAMES, key=lambda name: len(members[name]))
        if not members[split] and len(members[largest]) > 1:
            moved = members[largest].pop()
            members[split].append(moved)
            split_of_group[moved] = split
    return split_of_group


# -------------------------------------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class SynthesisedSample:
    """What :func:`synthesise_degraded` makes of a clean line."""

    degraded: np.ndarray
    recipe: list[dict[str, Any]]
    paper_page: str | None
    """The page the paper came from; None: procedural paper."""
    clean: np.ndarray
    """The clean target: the line given, or its ink at the page's darkness (``real_paper.clean_ink: page``)."""


def synthesise_degraded(
    clean: np.ndarray,
    sample_id: str,
    split: str,
    seed: int,
    degradations: Degradations,
    real_paper: RealPaperConfig | None,
    library: PaperLibrary | None,
) -> SynthesisedSample:
    """A sample's degraded image, its recipe, the page its paper came from and its clean target.

    Without real paper this is exactly :func:`degrade` with the sample's own generator, so the data of a config
    without ``real_paper`` does not change.
    """
    # clean: (height, width) uint8, 255 = white paper
    degradation_rng = rng_for(seed, sample_id, "degradation")
    if real_paper is None or library is None:
        return SynthesisedSample(*degrade(clean, degradations, degradation_rng), None, clean)
    paper_rng = rng_for(seed, sample_id, "real paper")
    if paper_rng.random() >= real_paper.probability:
        return SynthesisedSample(*degrade(clean, degradations, degradation_rng), None, clean)
    composed, composition = compose_on_real_paper(clean, library.pages(split), real_paper, paper_rng)
    degraded, recipe = degrade(composed, degradations, degradation_rng, skipped_kinds=REPLACED_BY_REAL_PAPER)
    if real_paper.clean_ink == "page":
        clean = ink_on_white(clean, composition["ink_absorption"])
        composition["clean_ink"] = "page"
    return SynthesisedSample(degraded, [composition, *recipe], composition["page"], clean)


def ink_on_white(clean: np.ndarray, absorption: float) -> np.ndarray:
    """``clean``'s ink as dark as the composition lays it on paper (``1 - absorption x coverage``), on white."""
    # clean: (height, width) uint8, 255 = white paper; returns the same
    coverage = 1.0 - clean.astype(np.float32) / 255.0
    return np.round((1.0 - absorption * coverage) * 255.0).astype(np.uint8)


def compose_on_real_paper(
    clean: np.ndarray, pages: Sequence[PaperPage], settings: RealPaperConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """``clean``'s ink on a patch of one of ``pages``, with the composition's recipe entry.

    The line's ink coverage (1 - clean) fades unevenly, then darkens the patch multiplicatively by the page's own
    ink darkness; bleed-through, real ink of another part of one of ``pages`` mirrored left to right, blurred and
    faint, darkens it the same way underneath.
    """
    # clean: (height, width) uint8, 255 = white paper; returns (height, width) uint8
    if not pages:
        raise RealPaperError("no paper page for this sample's split (see PaperLibrary.check_covers)")
    height, width = clean.shape
    page = pages[int(rng.integers(len(pages)))]
    top, left = _patch_corner(page, height, width, rng)
    paper = cut_patch(page.paper, top, left, height, width).astype(np.float32) / 255.0
    coverage = 1.0 - clean.astype(np.float32) / 255.0
    fading_applied, fading_strength = _plan(settings.ink_fading, rng)
    bleed_applied, bleed_strength = _plan(settings.bleed_through, rng)
    kind_seeds = rng.integers(2**63, size=2)
    absorption = float(np.clip(page.ink_absorption * rng.uniform(*INK_ABSORPTION_SPREAD), 0.05, 1.0))
    # Drawn after everything above, so that a config without grain composes exactly what it did before.
    grain_applied, grain_strength = _plan(settings.paper_grain, rng)
    grain_seed = int(rng.integers(2**63))
    recipe: dict[str, Any] = {
        "kind": "real_paper",
        "page": page.page_id,
        "patch_top_left_px": [top, left],
        "page_scale": page.scale,
        "ink_absorption": absorption,
        "ink_fading": None,
        "bleed_through": None,
        "paper_grain": None,
    }
    if grain_applied:
        paper, recipe["paper_grain"] = _grained(paper, grain_strength, np.random.default_rng(grain_seed))
    if fading_applied:
        coverage, recipe["ink_fading"] = _faded(coverage, fading_strength, np.random.default_rng(kind_seeds[0]))
    ghost = np.zeros_like(coverage)
    if bleed_applied:
        ghost, recipe["bleed_through"] = _bleed_through(
            pages, height, width, bleed_strength, np.random.default_rng(kind_seeds[1])
        )
    composed = paper * (1.0 - ghost) * (1.0 - absorption * coverage)
    return np.round(np.clip(composed, 0.0, 1.0) * 255.0).astype(np.uint8), recipe


def _plan(setting: Any, rng: np.random.Generator) -> tuple[bool, float]:
    return bool(rng.random() < setting.probability), float(rng.uniform(*setting.strength))


def _patch_corner(page: PaperPage, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
    page_height, page_width = page.shape
    return int(rng.integers(max(1, page_height - height + 1))), int(rng.integers(max(1, page_width - width + 1)))


def _faded(coverage: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """Ink fading unevenly: each pixel's coverage loses a smoothly varying share, up to 0.85 x strength, between
    15 % and 100 % of that over patches 0.3-1.5 line heights wide (as :mod:`degradations`' ``ink_fading``)."""
    height = coverage.shape[0]
    max_fade = 0.85 * strength
    patch_size_px = height * float(rng.uniform(0.3, 1.5))
    fade = max_fade * (0.575 + 0.425 * smooth_random_field(coverage.shape, patch_size_px, rng))
    return coverage * (1.0 - fade), {"strength": strength, "max_fade": max_fade, "patch_size_px": patch_size_px}


GRAIN_RESIDUAL_SIGMA_PX = 2.0
"""The paper's own fine texture is what a Gaussian of this width (page pixels) smooths away."""
GRAIN_STRETCH = (1.0, 12.0)
"""How many times longer than wide the grain's relief is, drawn from this range: up to 3 gave leather, laid paper's
short ridges; the ruled board of DIBCO 2011-PR6 runs across the page (README: Blank paper)."""
CREASE_SPACING_PX = (3.0, 14.0)
"""Typical distance between the creases of a grain, in page pixels (the patch is at the page's working scale)."""


def _grained(paper: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Paper made textured, three ways at once, each scaled by ``strength``:

    - its own fine texture amplified by 1 + 2 x strength x U(0.5, 1);
    - relief: a band-limited height field, stretched up to 12 times along rows or columns (leather grain when
      round, laid or ruled board when stretched), lit from one side as a scanner lights it: brightness changes by
      its slope, up to 0.15 x strength x U(0.5, 1) (one standard deviation);
    - creases: fragments of the height field's zero crossings, 1-2.5 px wide, darkening the paper by up to
      0.3 x strength x U(0.5, 1) at their core, where a second, coarser field is positive.
    """
    # paper: (height, width) float32 in [0, 1]; returns the same
    texture_gain = 1.0 + 2.0 * strength * float(rng.uniform(0.5, 1.0))
    smooth = ndimage.gaussian_filter(paper, GRAIN_RESIDUAL_SIGMA_PX, mode="reflect")
    spacing_px = float(rng.uniform(*CREASE_SPACING_PX))
    stretch = float(rng.uniform(*GRAIN_STRETCH))
    along_rows = bool(rng.random() < 0.5)
    across, along = spacing_px / 4.0, spacing_px / 4.0 * stretch
    height_field = _normalised(
        ndimage.gaussian_filter(
            rng.standard_normal(paper.shape).astype(np.float32), (across, along) if along_rows else (along, across)
        )
    )
    slope_rows, slope_columns = np.gradient(height_field)
    light_angle = float(rng.uniform(0.0, 2.0 * np.pi))
    relief = _normalised(np.cos(light_angle) * slope_columns + np.sin(light_angle) * slope_rows)
    relief_amplitude = 0.15 * strength * float(rng.uniform(0.5, 1.0))
    # |field| / |slope| approximates the distance to the zero crossing: creases of even width.
    crease_width_px = float(rng.uniform(1.0, 2.5))
    distance_px = np.abs(height_field) / np.maximum(np.hypot(slope_rows, slope_columns), 1e-6)
    fragments = smooth_random_field(paper.shape, 3.0 * spacing_px, rng) > 0.0
    creases = np.exp(-0.5 * (distance_px / (crease_width_px / 2.0)) ** 2) * fragments
    crease_depth = 0.3 * strength * float(rng.uniform(0.5, 1.0))
    grained = (smooth + texture_gain * (paper - smooth)) * (1.0 + relief_amplitude * np.clip(relief, -3.0, 3.0))
    grained *= 1.0 - crease_depth * creases
    params = {
        "strength": strength,
        "texture_gain": texture_gain,
        "spacing_px": spacing_px,
        "stretch": stretch,
        "along": "rows" if along_rows else "columns",
        "relief_amplitude": relief_amplitude,
        "light_angle_degrees": float(np.degrees(light_angle)),
        "crease_width_px": crease_width_px,
        "crease_depth": crease_depth,
    }
    return np.clip(grained, 0.0, 1.0).astype(np.float32), params


def _normalised(field: np.ndarray) -> np.ndarray:
    """``field`` with zero mean and unit standard deviation (unchanged where it is flat)."""
    centred = field - float(field.mean())
    return centred / max(float(centred.std()), 1e-6)


def _bleed_through(
    pages: Sequence[PaperPage], height: int, width: int, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Real ink of a page seen through the sheet: a patch of its ink, mirrored, blurred by (0.01 + 0.03 x
    strength) line heights, at opacity 0.1 + 0.4 x strength."""
    page = pages[int(rng.integers(len(pages)))]
    top, left = _patch_corner(page, height, width, rng)
    ink = cut_patch(page.ink, top, left, height, width).astype(np.float32)[:, ::-1] / 255.0
    blur_sigma_px = (0.01 + 0.03 * strength) * height
    opacity = 0.1 + 0.4 * strength
    ghost = opacity * np.clip(ndimage.gaussian_filter(ink, blur_sigma_px), 0.0, 1.0)
    params = {
        "strength": strength,
        "page": page.page_id,
        "patch_top_left_px": [top, left],
        "opacity": opacity,
        "blur_sigma_px": blur_sigma_px,
    }
    return ghost, params


# -------------------------------------------------------------------------------------------- helpers


def pages_per_split(library: PaperLibrary) -> dict[str, int]:
    return {split: len(library.pages(split)) for split in SPLIT_NAMES}


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _ground_truths_by_stem(truth_dir: Path) -> dict[str, Path]:
    """The ground truth of each scan stem in ``truth_dir``: ``<stem>_gt.*`` before ``<stem>.*``, as paired folders
    name them."""
    by_stem: dict[str, Path] = {}
    files = _image_files(truth_dir)
    for path in files:
        if path.stem.endswith("_gt"):
            by_stem.setdefault(path.stem[: -len("_gt")], path)
    for path in files:
        by_stem.setdefault(path.stem, path)
    return by_stem


def _group_of(file_name: str, folder: PaperFolder, page_id: str) -> str:
    if folder.group_pattern is not None:
        match = re.search(folder.group_pattern, file_name)
        if match is not None and "group" in match.groupdict():
            return f"{folder.name}:{match.group('group')}"
    return page_id
