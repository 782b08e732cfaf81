"""Restore (and read) a folder of scans with a trained checkpoint: lines and whole pages, any size.

A line is resized to the model's height keeping its aspect, restored in windows of the model's maximum width
(blended where they overlap), read by the recognizer at that height, and resized back to its own size. A page is
restored at its own scale in square windows, band by band, so its float data never exceeds one band. With a
ground-truth folder, restored and degraded images are binarised alike and scored with the DIBCO metrics.
"""

from __future__ import annotations

import json
import math
import time
import typing
from collections import Counter
from collections.abc import Callable, Sequence
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
from htr_pipeline.data.images import UnreadableImageError, read_grayscale
from htr_pipeline.data.line_batches import PAPER_VALUE
from htr_pipeline.inference.inputs import SkippedInput, output_name
from htr_pipeline.inference.layout import decide_kind
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


# ------------------------------------------------------------------------------------------------ one image


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float
    """Mean probability of the symbols read (the best path's non-blank steps); 0 when nothing is read."""
    flag: str | None
    """Why the reading looks like nothing useful (low confidence, one symbol repeated), else None."""


@torch.no_grad()
def restore_line(
    image: np.ndarray, run: TrainedRun, config: InferenceConfig, device: torch.device
) -> tuple[np.ndarray, Reading]:
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
    return resize_to(restored, *image.shape), read_line(restored, run, device, config.min_reading_confidence)


def read_line(line: np.ndarray, run: TrainedRun, device: torch.device, min_confidence: float = 0.0) -> Reading:
    """Greedy reading of a line at the model's height by the in-loop recognizer (it reads any width), with the
    mean probability of the symbols it read; flagged below ``min_confidence`` or when it is one symbol repeated."""
    # line: (line_height, width) uint8
    width_downsampling = run.recognizer.width_downsampling
    padded_width = math.ceil(line.shape[1] / width_downsampling) * width_downsampling
    pixels = torch.full((1, 1, line.shape[0], padded_width), PAPER_VALUE)  # padded with paper, as in training
    pixels[0, 0, :, : line.shape[1]] = torch.from_numpy(line).float().div(255.0)
    logits = run.recognizer(pixels.to(device)).logits.float()
    steps = ctc_time_steps(line.shape[1], width_downsampling)
    probabilities, best_path = logits[0, :steps].softmax(dim=-1).max(dim=-1)
    text = run.charset.decode_greedy(best_path.tolist())
    read = best_path != run.charset.blank_index
    confidence = float(probabilities[read].mean()) if bool(read.any()) else 0.0
    return Reading(text, confidence, _reading_flag(text, confidence, min_confidence))


REPEATED_SYMBOL_SHARE = 0.6
"""A reading of 8 symbols or more in which one symbol makes up this share is flagged (``sissssssigsiissss``)."""


def _reading_flag(text: str, confidence: float, min_confidence: float) -> str | None:
    if not text.strip():
        return "reads nothing"
    if confidence < min_confidence:
        return f"confidence {confidence:.2f} < inference.min_reading_confidence={min_confidence}"
    symbols = text.replace(" ", "")
    if len(symbols) >= 8:
        symbol, count = Counter(symbols).most_common(1)[0]
        if count / len(symbols) >= REPEATED_SYMBOL_SHARE:
            return f"{count} of its {len(symbols)} symbols are {symbol!r}"
    return None


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

RESULTS_FOLDER = "results"
"""Where each input's row (``results/<name>.json``) and the run's record (``results/run.json``) are saved among
the outputs, as each input is finished: the table and summary are made from them."""
RUN_RECORD = f"{RESULTS_FOLDER}/run.json"

OutputFiles = dict[str, np.ndarray | str]
"""Relative path -> image or text, saved in the versioned outputs folder."""


class InputRefusedError(ValueError):
    """An input inference does not restore, and why (a line past ``inference.max_line_aspect``)."""


@dataclass
class InferenceResult:
    files: OutputFiles
    table: pd.DataFrame
    """One row per restored input: kind and why, size, transcription and its confidence, seconds, DIBCO scores."""
    summary: dict[str, Any]


def lazy_outputs(
    inputs: Sequence[Path],
    skipped: Sequence[SkippedInput],
    run: TrainedRun,
    config: InferenceConfig,
    device: torch.device,
) -> dict[str, Callable[[], OutputFiles]]:
    """One entry per input, restored when the outputs dataset saves it (so one input's images are in memory at a
    time and each is on disk as soon as it is finished), then the run's record. An input that fails, whatever the
    error, is recorded as skipped with its reason and the others go on."""
    run.generator.to(device)
    run.recognizer.to(device)
    progress = tqdm(total=len(inputs), desc="inference", unit="image")
    entries: dict[str, Callable[[], OutputFiles]] = {
        output_name(path): partial(_infer_recorded, path, run, config, device, progress) for path in inputs
    }
    record = {
        "checkpoint": run.description,
        "input_path": str(config.input_path) if config.input_path is None else project_relative(config.input_path),
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped],
    }

    def finish() -> OutputFiles:
        progress.close()
        return {RUN_RECORD: json.dumps(record, ensure_ascii=False)}

    entries[RUN_RECORD] = finish
    return entries


def run_inference(
    inputs: Sequence[Path],
    skipped: Sequence[SkippedInput],
    run: TrainedRun,
    config: InferenceConfig,
    device: torch.device,
) -> InferenceResult:
    """:func:`lazy_outputs` computed at once (for a caller that keeps the files in memory), with its table."""
    files: OutputFiles = {}
    for entry in lazy_outputs(inputs, skipped, run, config, device).values():
        files |= entry()
    rows = [json.loads(typing.cast(str, text)) for name, text in files.items() if _is_row(name)]
    table, summary = summarise_inference(rows, json.loads(typing.cast(str, files[RUN_RECORD])), config)
    return InferenceResult(files, table, summary)


def _is_row(name: str) -> bool:
    return name.startswith(f"{RESULTS_FOLDER}/") and name.endswith(".json") and name != RUN_RECORD


def _infer_recorded(
    path: Path, run: TrainedRun, config: InferenceConfig, device: torch.device, progress: Any
) -> OutputFiles:
    started = time.perf_counter()
    try:
        row, outputs = _infer_one(path, run, config, device)
    except Exception as error:  # the boundary of one input: it is skipped with its reason, the others go on
        why = str(error) if isinstance(error, InputRefusedError) else f"{type(error).__name__}: {error}"
        row, outputs = {"file": path.name, "path": str(path), "skipped": " ".join(why.split())[:500]}, {}
    row["seconds"] = time.perf_counter() - started
    progress.update(1)
    what = f"skipped: {row['skipped']}" if "skipped" in row else f"{row['kind']} ({row['kind_reason']})"
    progress.write(f"inference: {path.name}: {what}")
    return outputs | {f"{RESULTS_FOLDER}/{output_name(path)}.json": json.dumps(row, ensure_ascii=False)}


def _infer_one(path: Path, run: TrainedRun, config: InferenceConfig, device: torch.device) -> tuple[dict, OutputFiles]:
    image = read_grayscale(path)
    decision = decide_kind(image, config.mode, config.line_min_aspect)
    height, width = image.shape
    if decision.kind == "line" and width / height > config.max_line_aspect:
        raise InputRefusedError(
            f"a line of {width} x {height} px (aspect {width / height:.0f}) is past inference.max_line_aspect="
            f"{config.max_line_aspect:g}: no text line is that long for its height; crop it, or raise the setting"
        )
    reading = None
    if decision.kind == "line":
        restored, reading = restore_line(image, run, config, device)
    else:
        restored = restore_page(image, run, config, device)
    name = output_name(path)
    outputs: OutputFiles = {f"restored/{name}.png": restored}
    row: dict[str, Any] = {
        "file": path.name,
        "restored": f"restored/{name}.png",
        "kind": decision.kind,
        "kind_reason": decision.reason,
        "width": width,
        "height": height,
        "transcription": reading.text if reading else None,
        "reading_confidence": reading.confidence if reading else None,
        "reading_flag": reading.flag if reading else None,
    }
    panels, captions = (
        [image, restored],
        [
            "input",
            "restored"
            + (f": reads {_shortened(reading.text)!r}" if reading else "")
            + (" (flagged)" if reading and reading.flag else ""),
        ],
    )
    if config.binarise is not None:
        binary = np.where(binarise(restored, config.binarise, config.sauvola_window), 0, 255).astype(np.uint8)
        outputs[f"binarised/{name}.png"] = binary
        panels.append(binary)
        captions.append(f"binarised ({config.binarise})")
    if reading is not None:
        outputs[f"transcriptions/{name}.txt"] = reading.text + "\n"
    truth = _ground_truth(path, restored, image, config, row)
    if truth is not None:
        captions[0] += _score_caption(row, "degraded")
        captions[1] += _score_caption(row, "restored")
        panels.append(truth)
        captions.append("ground truth")
    outputs[f"comparison/{name}.png"] = comparison_image(panels, decision.kind, config.comparison_max_width, captions)
    return row, outputs


def _ground_truth(
    path: Path, restored: np.ndarray, image: np.ndarray, config: InferenceConfig, row: dict[str, Any]
) -> np.ndarray | None:
    """The input's ground truth, its scores added to ``row``; a truth that cannot be used is a skipped comparison
    (``ground_truth_skipped`` says why), never a lost run."""
    if config.ground_truth_path is None:
        return None
    truth_path = ground_truth_file(path, config.ground_truth_path)
    row["ground_truth"] = truth_path.name if truth_path else None
    if truth_path is None:
        return None
    try:
        truth = read_grayscale(truth_path)
        row |= truth_scores(restored, image, truth, config)
    except (UnreadableImageError, ValueError) as error:
        row["ground_truth_skipped"] = f"{truth_path.name}: {error}"
        return None
    return truth


def _score_caption(row: dict[str, Any], name: str) -> str:
    return f" (F {row[f'{name}_f_measure']:.1f}, PSNR {row[f'{name}_psnr_db']:.1f} dB)"


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarise_inference(
    rows: Sequence[dict[str, Any]], record: dict[str, Any], config: InferenceConfig
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of restored inputs (in file order) and the summary, from the rows saved as each input finished."""
    restored = sorted((row for row in rows if "skipped" not in row), key=lambda row: row["file"])
    failed = [{"path": row["path"], "reason": row["skipped"]} for row in rows if "skipped" in row]
    table = pd.DataFrame(restored)
    seconds = float(sum(row["seconds"] for row in rows))
    scored = [column for column in table.columns if column.startswith(("restored_", "degraded_"))]
    flagged = [row for row in restored if row.get("reading_flag")]
    summary = {
        "checkpoint": record["checkpoint"],
        "input_path": record["input_path"],
        "inputs": len(table),
        "lines": int((table["kind"] == "line").sum()) if len(table) else 0,
        "pages": int((table["kind"] == "page").sum()) if len(table) else 0,
        "skipped": [*record["skipped"], *failed],
        "seconds": seconds,
        "images_per_second": len(table) / seconds if seconds > 0 else None,
        "with_ground_truth": int(table[scored[0]].notna().sum()) if scored else 0,
        "ground_truth_skipped": [
            {"file": row["file"], "reason": row["ground_truth_skipped"]}
            for row in restored
            if row.get("ground_truth_skipped")
        ],
        "readings_flagged": len(flagged),
        "flagged_readings": [
            {"file": row["file"], "reading": row["transcription"], "why": row["reading_flag"]} for row in flagged[:10]
        ],
        "binarisation_for_metrics": config.binarise or "otsu",
        "mean_scores": {column: float(table[column].mean()) for column in scored},
    }
    return table, summary
