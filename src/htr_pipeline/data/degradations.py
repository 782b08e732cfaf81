"""Seeded document degradations that turn a clean line image into a plausible degraded scan.

Every kind is one function ``_apply_<kind>(image, strength, rng) -> (image, params)``: ``image`` is float32 in
[0, 1] (1 = white paper), ``strength`` in [0, 1] is mapped to physical parameters in its docstring, and
``params`` records what was drawn, so the recipe of a sample says exactly what was done to it. Lengths are
scaled by the image height, so a recipe means the same at every ``image_height``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from htr_pipeline.config import Degradations, DegradationSetting

DEGRADATION_KINDS: tuple[str, ...] = (
    "paper_texture",
    "uneven_lighting",
    "stains",
    "bleed_through",
    "ruled_lines",
    "ink_fading",
    "blur",
    "noise",
    "jpeg",
)
"""The kinds, in the order they are applied: the order of the fields of :class:`Degradations`."""

assert tuple(Degradations.model_fields) == DEGRADATION_KINDS

Params = dict[str, float | int | str | list]


def degrade(
    clean: np.ndarray,
    settings: Degradations,
    rng: np.random.Generator,
    skipped_kinds: frozenset[str] = frozenset(),
) -> tuple[np.ndarray, list[dict]]:
    """Apply each kind of degradation with its probability; return the degraded image and its recipe.

    The recipe has one dict per applied kind, in order: ``{"kind", "strength", **drawn physical params}``,
    all plain JSON values. Whether each kind applies, its strength and a seed of its own are drawn for every
    kind before any is applied, so switching one kind off leaves what the others draw unchanged. Kinds in
    ``skipped_kinds`` are drawn but never applied (real paper replaces some: :mod:`real_paper`).
    """
    # clean: (height, width) uint8, 255 = white paper, 0 = black ink
    if clean.ndim != 2 or clean.dtype != np.uint8:
        raise ValueError(f"expected a (height, width) uint8 image, got shape {clean.shape} of {clean.dtype}")
    planned = [_plan_kind(getattr(settings, kind), rng) for kind in DEGRADATION_KINDS]
    image = clean.astype(np.float32) / 255.0
    recipe: list[dict] = []
    for kind, (is_applied, strength, kind_seed) in zip(DEGRADATION_KINDS, planned, strict=True):
        if not is_applied or kind in skipped_kinds:
            continue
        image, params = _APPLY_KIND[kind](image, strength, np.random.default_rng(kind_seed))
        image = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        recipe.append({"kind": kind, "strength": strength, **params})
    return _to_uint8(image), recipe


def _plan_kind(setting: DegradationSetting, rng: np.random.Generator) -> tuple[bool, float, int]:
    # rng.random() is in [0, 1): probability 0 never applies and probability 1 always does.
    is_applied = bool(rng.random() < setting.probability)
    strength = float(rng.uniform(*setting.strength))
    kind_seed = int(rng.integers(2**63))
    return is_applied, strength, kind_seed


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def smooth_random_field(shape: tuple[int, int], correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of ``shape`` with features about ``correlation_px`` wide, peak magnitude 1.

    White noise on a grid of half that spacing is smoothed by a Gaussian and upsampled bilinearly, which is
    much cheaper than smoothing full-resolution noise and looks the same at these scales.
    """
    # returns: (height, width) float32 in [-1, 1]
    height, width = shape
    cell_px = max(correlation_px / 2.0, 1.0)
    grid_rows = math.ceil(height / cell_px) + 2
    grid_cols = math.ceil(width / cell_px) + 2
    grid = ndimage.gaussian_filter(rng.standard_normal((grid_rows, grid_cols), dtype=np.float32), 1.0, mode="wrap")
    if cell_px > 1.0:
        upsampled_size = (round(grid_cols * cell_px), round(grid_rows * cell_px))
        grid = np.asarray(Image.fromarray(grid).resize(upsampled_size, Image.Resampling.BILINEAR))
    field = grid[:height, :width]
    peak = max(float(field.max()), -float(field.min()))
    return field / peak if peak > 0 else field


def _paper_level(image: np.ndarray) -> float:
    """The brightness of the bare paper: most of a line image is paper, so a high percentile finds it."""
    # Every other row and column: the same answer at a quarter of the cost.
    return max(float(np.percentile(image[::2, ::2], 90)), 1e-3)


def _ink_coverage(image: np.ndarray) -> np.ndarray:
    """How much ink covers each pixel: 0 on bare paper, 1 on black ink."""
    paper = _paper_level(image)
    return np.clip((paper - image) / paper, 0.0, 1.0).astype(np.float32)


def _image_coordinates(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of every pixel, in units of the image height."""
    height, width = image.shape
    rows = np.arange(height, dtype=np.float32)[:, None] / height
    columns = np.arange(width, dtype=np.float32)[None, :] / height
    return rows, columns


# ------------------------------------------------------------------------------------------------- kinds


def _apply_paper_texture(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Aged paper: a darker tone, soft blotches and fine grain, multiplied under the ink.

    Tone: paper darkens by up to 0.12 * strength. Blotches: amplitude 0.10 * strength, about 0.3-1.0 image
    heights wide. Grain: amplitude 0.05 * strength, features about 3 % of the height (at least 2 px).
    """
    # image: (height, width) float32 in [0, 1]
    height = image.shape[0]
    tone_darkening = 0.12 * strength * float(rng.uniform(0.3, 1.0))
    blotch_amplitude = 0.10 * strength
    blotch_size_px = height * float(rng.uniform(0.3, 1.0))
    grain_amplitude = 0.05 * strength
    grain_size_px = max(2.0, 0.03 * height)
    blotches = smooth_random_field(image.shape, blotch_size_px, rng)
    grain = smooth_random_field(image.shape, grain_size_px, rng)
    paper = 1.0 - tone_darkening + blotch_amplitude * (blotches - 1.0) / 2.0 + grain_amplitude * grain
    params: Params = {
        "tone_darkening": tone_darkening,
        "blotch_amplitude": blotch_amplitude,
        "blotch_size_px": blotch_size_px,
        "grain_amplitude": grain_amplitude,
        "grain_size_px": grain_size_px,
    }
    return image * paper, params


def _apply_uneven_lighting(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """A scanner or camera lit unevenly: a linear shading gradient and a vignette around a random centre.

    Gradient: up to 0.30 * strength darker at one end, in a random direction. Vignette: up to 0.25 * strength
    darker, falling off over 1-3 image heights from its centre.
    """
    # image: (height, width) float32 in [0, 1]
    height, width = image.shape
    rows, columns = _image_coordinates(image)
    gradient_darkening = 0.30 * strength * float(rng.uniform(0.5, 1.0))
    gradient_angle_degrees = float(rng.uniform(0.0, 360.0))
    angle = math.radians(gradient_angle_degrees)
    along = columns * math.cos(angle) + rows * math.sin(angle)
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    vignette_darkening = 0.25 * strength * float(rng.uniform(0.3, 1.0))
    vignette_centre_xy_px = [float(rng.uniform(0.0, width)), float(rng.uniform(0.0, height))]
    vignette_radius_px = height * float(rng.uniform(1.0, 3.0))
    squared_distance = (columns - vignette_centre_xy_px[0] / height) ** 2 + (
        rows - vignette_centre_xy_px[1] / height
    ) ** 2
    vignette = 1.0 - np.exp(-squared_distance / (2.0 * (vignette_radius_px / height) ** 2))
    lighting = (1.0 - gradient_darkening * along) * (1.0 - vignette_darkening * vignette)
    params: Params = {
        "gradient_darkening": gradient_darkening,
        "gradient_angle_degrees": gradient_angle_degrees,
        "vignette_darkening": vignette_darkening,
        "vignette_centre_xy_px": vignette_centre_xy_px,
        "vignette_radius_px": vignette_radius_px,
    }
    return image * lighting.astype(np.float32), params


def _apply_stains(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """A few soft, irregular blobs (water, tea, foxing) with a slightly darker tide line at their rim.

    1-3 stains; radius 0.3-1.0 image heights times (0.5 + strength); darkening (0.08 + 0.25 * strength) times
    0.6-1.0 at the centre, the rim 40 % darker than that.
    """
    # image: (height, width) float32 in [0, 1]
    height, width = image.shape
    stain_count = int(rng.integers(1, 4))
    centres_xy_px, radii_px, darkenings = [], [], []
    stained = np.ones_like(image)
    for _ in range(stain_count):
        centre_x, centre_y = float(rng.uniform(0.0, width)), float(rng.uniform(-0.5 * height, 1.5 * height))
        radius_px = height * float(rng.uniform(0.3, 1.0)) * (0.5 + strength)
        darkening = (0.08 + 0.25 * strength) * float(rng.uniform(0.6, 1.0))
        _darken_stain(stained, centre_x, centre_y, radius_px, darkening, rng)
        centres_xy_px.append([centre_x, centre_y])
        radii_px.append(radius_px)
        darkenings.append(darkening)
    params: Params = {
        "stain_count": stain_count,
        "centres_xy_px": centres_xy_px,
        "radii_px": radii_px,
        "darkenings": darkenings,
    }
    return image * stained, params


def _darken_stain(
    stained: np.ndarray,
    centre_x: float,
    centre_y: float,
    radius_px: float,
    darkening: float,
    rng: np.random.Generator,
) -> None:
    """Multiply one stain into ``stained``, in place, within the stain's bounding box only."""
    # stained: (height, width) float32 paper transmission, 1 = unstained
    height, width = stained.shape
    # A ragged edge reaches out by at most 0.25 radii and the tide line fades within another 0.25.
    reach_px = 1.5 * radius_px
    top, bottom = max(0, math.floor(centre_y - reach_px)), min(height, math.ceil(centre_y + reach_px))
    left, right = max(0, math.floor(centre_x - reach_px)), min(width, math.ceil(centre_x + reach_px))
    if top >= bottom or left >= right:
        return
    rows = np.arange(top, bottom, dtype=np.float32)[:, None]
    columns = np.arange(left, right, dtype=np.float32)[None, :]
    ragged_edge = 0.25 * smooth_random_field((bottom - top, right - left), 0.5 * radius_px, rng)
    relative_distance = np.sqrt((columns - centre_x) ** 2 + (rows - centre_y) ** 2) / radius_px + ragged_edge
    body = np.sqrt(np.clip(1.0 - relative_distance, 0.0, 1.0))
    tide_line = np.exp(-(((relative_distance - 1.0) / 0.08) ** 2))
    stained[top:bottom, left:right] *= 1.0 - darkening * np.clip(body + 0.4 * tide_line, 0.0, 1.4)


def _apply_bleed_through(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Writing on the back of the sheet showing through: the line's own ink, mirrored, shifted and blurred.

    Opacity 0.08 + 0.32 * strength; blur sigma (0.01 + 0.04 * strength) image heights; shifted by up to
    0.35 image heights vertically and 0.3 image widths horizontally.
    """
    # image: (height, width) float32 in [0, 1]
    height, width = image.shape
    opacity = 0.08 + 0.32 * strength
    blur_sigma_px = (0.01 + 0.04 * strength) * height
    shift_x_px = round(float(rng.uniform(-0.3, 0.3)) * width)
    shift_y_px = round(float(rng.uniform(-0.35, 0.35)) * height)
    mirrored_ink = _ink_coverage(image)[:, ::-1]
    ghost = ndimage.gaussian_filter(_shifted(mirrored_ink, shift_y_px, shift_x_px), sigma=blur_sigma_px)
    params: Params = {
        "opacity": opacity,
        "blur_sigma_px": blur_sigma_px,
        "shift_x_px": shift_x_px,
        "shift_y_px": shift_y_px,
    }
    return image * (1.0 - opacity * ghost), params


def _shifted(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` moved by whole pixels, with zeros where nothing moved in."""
    height, width = image.shape
    moved = np.zeros_like(image)
    source = image[max(0, -rows) : height - max(0, rows), max(0, -columns) : width - max(0, columns)]
    moved[max(0, rows) : max(0, rows) + source.shape[0], max(0, columns) : max(0, columns) + source.shape[1]] = source
    return moved


def _apply_ruled_lines(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Faint printed rules of lined paper, slightly tilted, printed under the ink.

    Spacing 0.8-1.2 image heights at a random offset; darkening 0.10 + 0.30 * strength; thickness (Gaussian
    sigma) 1.2 % of the height, at least 0.5 px; tilt within +-0.6 degrees.
    """
    # image: (height, width) float32 in [0, 1]
    height, width = image.shape
    spacing_px = height * float(rng.uniform(0.8, 1.2))
    first_rule_y_px = float(rng.uniform(0.0, spacing_px))
    tilt_degrees = float(rng.uniform(-0.6, 0.6))
    darkening = 0.10 + 0.30 * strength
    thickness_px = max(0.5, 0.012 * height)
    rule_ys_px = [float(y) for y in np.arange(first_rule_y_px, height + 0.3 * height, spacing_px)]
    rows = np.arange(height, dtype=np.float32)[:, None]
    tilt_offset = (np.arange(width, dtype=np.float32)[None, :] - width / 2) * math.tan(math.radians(tilt_degrees))
    rules = np.zeros_like(image)
    for rule_y_px in rule_ys_px:
        rules = np.maximum(rules, np.exp(-0.5 * ((rows - rule_y_px - tilt_offset) / thickness_px) ** 2))
    params: Params = {
        "rule_ys_px": rule_ys_px,
        "spacing_px": spacing_px,
        "tilt_degrees": tilt_degrees,
        "darkening": darkening,
        "thickness_px": thickness_px,
    }
    return image * (1.0 - darkening * rules), params


def _apply_ink_fading(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Ink that has faded unevenly: each ink pixel moves toward the paper by a smoothly varying share.

    The share is up to 0.85 * strength, varying between 15 % and 100 % of that over patches 0.3-1.5 image
    heights wide.
    """
    # image: (height, width) float32 in [0, 1]
    height = image.shape[0]
    max_fade = 0.85 * strength
    patch_size_px = height * float(rng.uniform(0.3, 1.5))
    fade = max_fade * (0.575 + 0.425 * smooth_random_field(image.shape, patch_size_px, rng))
    paper = _paper_level(image)
    params: Params = {"max_fade": max_fade, "patch_size_px": patch_size_px}
    return image + np.maximum(paper - image, 0.0) * fade, params


def _apply_blur(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """An out-of-focus or low-resolution scan: Gaussian blur of sigma (0.2 + 2.0 * strength) * height / 64 px."""
    # image: (height, width) float32 in [0, 1]
    sigma_px = (0.2 + 2.0 * strength) * image.shape[0] / 64.0
    return ndimage.gaussian_filter(image, sigma=sigma_px), {"sigma_px": sigma_px}


def _apply_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Sensor noise and dust: Gaussian noise of std 0.10 * strength, and 0.4 % * strength of the pixels each
    set to white (salt) or black (pepper). Per pixel, so not scaled by height."""
    # image: (height, width) float32 in [0, 1]
    noise_std = 0.10 * strength
    salt_pepper_fraction = 0.004 * strength
    noisy = image + noise_std * rng.standard_normal(image.shape, dtype=np.float32)
    speck_draw = rng.random(image.shape, dtype=np.float32)
    noisy[speck_draw < salt_pepper_fraction] = 0.0
    noisy[speck_draw > 1.0 - salt_pepper_fraction] = 1.0
    return noisy, {"noise_std": noise_std, "salt_pepper_fraction": salt_pepper_fraction}


def _apply_jpeg(image: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Lossy storage: a real JPEG round trip (Pillow) at quality round(90 - 80 * strength), 90 down to 10."""
    # image: (height, width) float32 in [0, 1]
    quality = round(90 - 80 * strength)
    encoded = io.BytesIO()
    Image.fromarray(_to_uint8(image)).save(encoded, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(encoded.getvalue())).convert("L"))
    return decoded.astype(np.float32) / 255.0, {"quality": quality}


_APPLY_KIND: dict[str, Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, Params]]] = {
    "paper_texture": _apply_paper_texture,
    "uneven_lighting": _apply_uneven_lighting,
    "stains": _apply_stains,
    "bleed_through": _apply_bleed_through,
    "ruled_lines": _apply_ruled_lines,
    "ink_fading": _apply_ink_fading,
    "blur": _apply_blur,
    "noise": _apply_noise,
    "jpeg": _apply_jpeg,
}
assert tuple(_APPLY_KIND) == DEGRADATION_KINDS
