"""Restore (and read) a folder of scans with a trained checkpoint: lines and whole pages, any size.

A line is resized to the model's height keeping its aspect, restored in windows of the model's maximum width
(blended where they overlap), read by the recognizer at that height, and resized back to its own size. A page is
restored at its own scale in square windows, band by band, so its float data never exceeds one band. With a
ground-truth folder, restored and degraded images are binarised alike and scored with the DIBCO metrics.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont

from htr_pipeline.checkpoints import TrainedRunConfig
from htr_pipeline.config import InferenceConfig
from htr_pipeline.data.images import read_grayscale
from htr_pipeline.data.line_batches import PAPER_VALUE
from htr_pipeline.inference.inputs import SkippedInput, output_name
from htr_pipeline.inference.tiling import resize_to, resize_to_height, restore_tiled
from htr_pipeline.metrics import binarise, dibco_scores
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.progress import tqdm
from htr_pipeline.project_paths import project_relative
from htr_pipeline.restoring import restore_images
from htr_pipeline.trained_run import TrainedRun

InputKind = Literal["line", "page"]
COMPARISON_GAP_PX = 8
COMPARISON_GAP_GREY = 128
COMPARISON_CAPTIONS = ("input", "restored", "binarised")
"""What each panel of a comparison image is, in the order ``_infer_one`` puts them."""
CAPTION_FONT_PX = 16
CAPTION_STRIP_PX = 22
"""Mid grey between the panels of a comparison image: distinct from paper and from ink."""


def _restore_on(generator: torch.nn.Module, device: torch.device, batch: torch.Tensor) -> torch.Tensor:
    """``batch`` restored by ``generator`` on ``device``, given back on the CPU."""
    # batch: (n, 1, height, width) float32 in [0, 1], on the CPU
    return restore_images(generator, batch.to(device)).cpu()


def _line_size(run: TrainedRun) -> tuple[int, int]:
    """The height lines were trained at (``data.image_height`` of the run) and the widest window a line is restored
    in (``data.max_width``, down to the generator's size multiple): longer lines are restored in windows."""
    data = typing.cast(TrainedRunConfig, run.config).data
    return data.image_height, data.max_width - data.max_width % run.size_multiple


def input_kind(image: np.ndarray, config: InferenceConfig) -> InputKind:
    """``mode`` decides; ``auto``: at least ``line_min_aspect`` times wider than high is a line."""
    if config.mode != "auto":
        return "line" if config.mode == "lines" else "page"
    height, width = image.shape
    return "line" if width >= config.line_min_aspect * height else "page"


# ------------------------------------------------------------------------------------------------ one image


@torch.no_grad()
def restore_line(
    image: np.ndarray, run: TrainedRun, config: InferenceConfig, device: torch.device
) -> tuple[np.ndarray, str]:
    """The restored line at the input's own size, and the recognizer's reading of it."""
    # image: (height, width) uint8
    line_height, window_width = _line_size(run)
    at_model_height, _ = resize_to_height(image, line_height)
    restored = restore_tiled(
        at_model_height,
        partial(_restore_on, run.generator, device),
        window_height=line_height,
        window_width=window_width,
        overlap=min(config.window_overlap, window_width // 2),
        ramp=config.ramp,
        size_multiple=run.size_multiple,
        tiles_per_batch=config.windows_per_batch,
    )
    return resize_to(restored, *image.shape), read_line(restored, run, device)


def read_line(line: np.ndarray, run: TrainedRun, device: torch.device) -> str:
    """Greedy reading of a line at the model's height by the in-loop recognizer (it reads any width)."""
    # line: (line_height, width) uint8
    width_downsampling = run.recognizer.width_downsampling
    padded_width = math.ceil(line.shape[1] / width_downsampling) * width_downsampling
    pixels = torch.full((1, 1, line.shape[0], padded_width), PAPER_VALUE)  # padded with paper, as in training
    pixels[0, 0, :, : line.shape[1]] = torch.from_numpy(line).float().div(255.0)
    logits = run.recognizer(pixels.to(device)).logits.float()
    steps = ctc_time_steps(line.shape[1], width_downsampling)
    return run.charset.decode_greedy(logits[0, :steps].argmax(dim=-1).tolist())


def restore_page(image: np.ndarray, run: TrainedRun, config: InferenceConfig, device: torch.device) -> np.ndarray:
    window = config.page_window - config.page_window % run.size_multiple
    return restore_tiled(
        image,
        partial(_restore_on, run.generator, device),
        window_height=window,
        window_width=window,
        overlap=config.window_overlap,
        ramp=config.ramp,
        size_multiple=run.size_multiple,
        tiles_per_batch=config.windows_per_batch,
        progress=True,
    )


def comparison_image(
    panels: Sequence[np.ndarray], kind: InputKind, max_width: int, captions: Sequence[str] = COMPARISON_CAPTIONS
) -> np.ndarray:
    """Input, restored (and binarised) side by side for pages, stacked for lines; scaled to ``max_width``; each
    panel under its caption (``captions[i]`` names ``panels[i]``), drawn after scaling so it stays readable."""
    if len(captions) < len(panels):
        raise ValueError(f"comparison of {len(panels)} panels got {len(captions)} captions")
    total_width = sum(panel.shape[1] for panel in panels) + COMPARISON_GAP_PX * (len(panels) - 1)
    scale = min(1.0, max_width / (total_width if kind == "page" else panels[0].shape[1]))
    captioned = [
        _under_caption(_scaled(panel, scale), caption) for panel, caption in zip(panels, captions, strict=False)
    ]
    # Side by side, panels share a height; stacked, a width (a caption may have widened a narrow line).
    axis = 0 if kind == "page" else 1
    size = max(panel.shape[axis] for panel in captioned)
    captioned = [
        np.pad(panel, [(0, size - panel.shape[axis]) if dim == axis else (0, 0) for dim in (0, 1)], constant_values=255)
        for panel in captioned
    ]
    gap_shape = (
        (captioned[0].shape[0], COMPARISON_GAP_PX) if kind == "page" else (COMPARISON_GAP_PX, captioned[0].shape[1])
    )
    gap = np.full(gap_shape, COMPARISON_GAP_GREY, dtype=np.uint8)
    pieces = [piece for panel in captioned for piece in (panel, gap)][:-1]
    return np.hstack(pieces) if kind == "page" else np.vstack(pieces)


def _scaled(panel: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return panel
    size = (max(1, round(panel.shape[1] * scale)), max(1, round(panel.shape[0] * scale)))
    return np.asarray(Image.fromarray(panel).resize(size, Image.Resampling.BILINEAR))


def _under_caption(panel: np.ndarray, caption: str) -> np.ndarray:
    """``panel`` with a white strip above it that says what it is (widened with white to fit the caption)."""
    font = ImageFont.load_default(size=CAPTION_FONT_PX)
    width = max(panel.shape[1], int(np.ceil(font.getlength(caption))) + 8)
    strip = Image.new("L", (width, CAPTION_STRIP_PX), 255)
    ImageDraw.Draw(strip).text((4, 2), caption, fill=0, font=font)
    widened = np.pad(panel, ((0, 0), (0, width - panel.shape[1])), constant_values=255)
    return np.vstack([np.asarray(strip), widened])


def ground_truth_file(image_path: Path, folder: Path) -> Path | None:
    """``<name>_gt.<ext>`` or ``<name>.<ext>`` in ``folder`` (any extension), as paired folders name them."""
    for candidate in sorted(folder.glob(f"{image_path.stem}_gt.*")) + sorted(folder.glob(f"{image_path.stem}.*")):
        if candidate.is_file():
            return candidate
    return None


def truth_scores(
    restored: np.ndarray, degraded: np.ndarray, truth: np.ndarray, config: InferenceConfig
) -> dict[str, float]:
    """DIBCO metrics of the restored and of the degraded image, both binarised the same way, against the truth's
    ink (dark pixels of the ground truth)."""
    if truth.shape != restored.shape:
        raise ValueError(
            f"ground truth is {truth.shape[1]} x {truth.shape[0]} px, the image {restored.shape[1]} x "
            f"{restored.shape[0]} px: they must be the same size"
        )
    method = config.binarise or "otsu"
    ink_truth = truth < 128
    scores = {}
    for name, image in (("restored", restored), ("degraded", degraded)):
        ink = binarise(image, method, config.sauvola_window)
        scores |= {f"{name}_{metric}": value for metric, value in dibco_scores(ink, ink_truth).items()}
    return scores


# ------------------------------------------------------------------------------------------------ a folder


@dataclass
class InferenceResult:
    files: dict[str, np.ndarray | str]
    """Relative path -> image or text, saved as one versioned folder."""
    table: pd.DataFrame
    """One row per input: kind, size, transcription, seconds, DIBCO scores when there is ground truth."""
    summary: dict[str, Any]


def run_inference(
    inputs: Sequence[Path],
    skipped: Sequence[SkippedInput],
    run: TrainedRun,
    config: InferenceConfig,
    device: torch.device,
) -> InferenceResult:
    """Each input restored (and read, if a line) by ``run``'s generator and in-loop recognizer on ``device``."""
    run.generator.to(device)
    run.recognizer.to(device)
    files: dict[str, np.ndarray | str] = {}
    rows = []
    started = time.perf_counter()
    for path in tqdm(inputs, desc="inference", unit="image"):
        row, outputs = _infer_one(path, run, config, device)
        rows.append(row)
        files |= outputs
    seconds = time.perf_counter() - started
    table = pd.DataFrame(rows)
    return InferenceResult(files, table, _summary(table, skipped, run, config, seconds))


def _infer_one(
    path: Path, run: TrainedRun, config: InferenceConfig, device: torch.device
) -> tuple[dict[str, Any], dict]:
    started = time.perf_counter()
    image = read_grayscale(path)
    kind = input_kind(image, config)
    if kind == "line":
        restored, transcription = restore_line(image, run, config, device)
    else:
        restored, transcription = restore_page(image, run, config, device), None
    name = output_name(path)
    outputs: dict[str, np.ndarray | str] = {f"restored/{name}.png": restored}
    panels = [image, restored]
    if config.binarise is not None:
        binary = np.where(binarise(restored, config.binarise, config.sauvola_window), 0, 255).astype(np.uint8)
        outputs[f"binarised/{name}.png"] = binary
        panels.append(binary)
    if transcription is not None:
        outputs[f"transcriptions/{name}.txt"] = transcription + "\n"
    outputs[f"comparison/{name}.png"] = comparison_image(panels, kind, config.comparison_max_width)
    row: dict[str, Any] = {
        "file": path.name,
        "restored": f"restored/{name}.png",
        "kind": kind,
        "width": image.shape[1],
        "height": image.shape[0],
        "transcription": transcription,
    }
    truth_path = ground_truth_file(path, config.ground_truth_path) if config.ground_truth_path else None
    if config.ground_truth_path is not None:
        row["ground_truth"] = truth_path.name if truth_path else None
    if truth_path is not None:
        row |= truth_scores(restored, image, read_grayscale(truth_path), config)
    row["seconds"] = time.perf_counter() - started
    return row, outputs


def _summary(
    table: pd.DataFrame,
    skipped: Sequence[SkippedInput],
    run: TrainedRun,
    config: InferenceConfig,
    seconds: float,
) -> dict[str, Any]:
    scored = [column for column in table.columns if column.startswith(("restored_", "degraded_"))]
    return {
        "checkpoint": run.description,
        "input_path": str(config.input_path) if config.input_path is None else project_relative(config.input_path),
        "inputs": len(table),
        "lines": int((table["kind"] == "line").sum()) if len(table) else 0,
        "pages": int((table["kind"] == "page").sum()) if len(table) else 0,
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped],
        "seconds": seconds,
        "images_per_second": len(table) / seconds if seconds > 0 else None,
        "with_ground_truth": int(table["ground_truth"].notna().sum()) if "ground_truth" in table else 0,
        "binarisation_for_metrics": config.binarise or "otsu",
        "mean_scores": {column: float(table[column].mean()) for column in scored},
    }
