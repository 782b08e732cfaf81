"""Split hygiene: no group (writer, page) in two splits, and no image repeated across splits.

Rules:

- **Groups.** A ``group`` with samples in more than one split is a ``problem``: valid and test then score hands
  or pages the model trained on. A sample without a group is its own group.
- **Near-duplicate images.** Each sample's clean image (its degraded image when it has no clean one) gets a
  perceptual hash; every pair of samples of different splits and the same image type is compared by Hamming
  distance, and a pair within ``max_distance`` bits is a near-duplicate. With equal transcriptions it is a
  ``problem``: the same line and its label are in both splits. Otherwise (other text, or no text) it is a
  ``warning`` to look at: a re-scan whose labels disagree (one is wrong), a restoration pair scored on what it
  trained on, or a false alarm (likelier for pages: the threshold below was measured on lines).
- Equal transcriptions in different splits are counted in the details only: the same words in another hand or
  another rendering are legitimate.

The hash. A plain ``imagehash.phash`` squashes an image to a square: a long line is compressed and a short one
stretched, so the same pixel shift moves a short line's hash far more. A line is therefore first padded on the
right with its paper tone to :data:`LINE_CANVAS_ASPECT` (never stretched), so every line is hashed at the same
scale; pages are hashed as they are. Measured on the 1,500-line laptop data set (1,200 train, 150 valid, 150
test; clean images) with ``hash_size`` 32 (1,024 bits):

- distinct lines: the 382,500 cross-split pairs are at least 196 bits apart (202 on the degraded images); the
  closest pair is one word rendered in two styles of one font. None is within 150.
- copies of 300 lines: re-saved as JPEG (quality 50), with Gaussian noise (sigma 15), blurred, 15 grey levels
  brighter or with 0.8 contrast differ by at most 100 bits; shifted by 2 px, 2 px wider or 5 % smaller by at
  most 118; a 4 px shift by at most 156. At the default ``diagnostics.near_duplicate_max_distance`` (150)
  every kind of copy is found, the 4 px shift in 99.7 % of lines. On the degraded images, whose paper is
  already noisy, noise of sigma 10 and 15 on top is found in 99.7 % and 97.7 % of lines; a line's clean and
  degraded images are within 150 bits for 93 % of lines.
- the same hash without the padding separates distinct lines as well (at least 204 bits) but finds only 54 % of
  the 2 px shifts and 68 % of the copies with 3 px of right margin cropped (padded: 100 %); the default 64-bit
  phash put distinct lines as close as 4 bits, which noisy copies also reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import imagehash
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import SPLIT_NAMES, DiagnosticsConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.data.splits import groups_in_several_splits
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.progress import tqdm

NAME = "split_hygiene"
TITLE = "Split hygiene"

LINE_CANVAS_ASPECT = 8
"""Width : height a line is padded to before hashing (the data's ``max_width`` / ``image_height`` is 512 / 64);
wider lines are squeezed to it by the hash."""
PAPER_PERCENTILE = 90
"""The padding takes the line's paper tone: this percentile of its pixels (most of a line is paper)."""
DISTANCE_CHUNK_ELEMENTS = 1 << 22
"""64-bit words XOR-ed at once when comparing hashes: bounds memory (32 MiB) whatever the split sizes."""
PAIRS_IN_MESSAGE = 5
MARKDOWN_ROW_LIMIT = 50
HISTOGRAM_BINS = 50


# ----------------------------------------------------------------------------------------------- the report


def split_hygiene_report(
    manifest: pd.DataFrame, store: LineImageStore, hash_size: int, max_distance: int
) -> AuditReport:
    """Groups in several splits and near-duplicate images across splits (rules: module docstring)."""
    groups = groups_across_splits(manifest)
    hashes = hash_sample_images(manifest, store, hash_size)
    comparison = compare_across_splits(manifest, hashes, max_distance)
    near_duplicates = near_duplicate_records(manifest, comparison.pairs)
    repeated_texts = transcriptions_in_several_splits(manifest)
    bits = hash_size * hash_size

    findings = [
        *_group_findings(groups),
        *_near_duplicate_findings(near_duplicates, max_distance, bits),
    ]
    if not findings:
        findings.append(_all_fine_finding(manifest, comparison, max_distance, bits))

    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={
            "hash": {
                "method": "imagehash.phash; lines padded on the right with their paper tone to width:height "
                f"{LINE_CANVAS_ASPECT}:1 first",
                "hash_size": hash_size,
                "bits": bits,
                "max_distance": max_distance,
                "line_canvas_aspect": LINE_CANVAS_ASPECT,
            },
            "samples_hashed": len(manifest),
            "samples_hashed_per_split": _in_split_order(manifest["split"].value_counts()),
            "cross_split_pairs_compared": comparison.pairs_compared,
            "groups_in_several_splits": groups,
            "near_duplicates": near_duplicates,
            "closest_cross_split_distance": comparison.closest_distance,
            "nearest_cross_split_distances": comparison.nearest_distances,
            "transcriptions_in_several_splits": repeated_texts,
        },
        markdown_sections=_markdown_sections(groups, near_duplicates, repeated_texts),
    )


# --------------------------------------------------------------------------------------------------- groups


def groups_across_splits(manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """Every group with samples in more than one split, with its sample count per split."""
    # Element-wise: with pandas' string dtype, ``where(notna, None)`` would keep NaN for the missing groups.
    groups = [None if pd.isna(group) else str(group) for group in manifest["group"]]
    names = groups_in_several_splits(manifest["split"].astype(str).tolist(), groups)
    records = []
    for name in names:
        counts = manifest.loc[manifest["group"] == name, "split"].value_counts()
        records.append({"group": str(name), "samples_per_split": _in_split_order(counts)})
    return records


def _split_order(splits: Iterable[str]) -> list[str]:
    """The splits present: train, valid, test first, then any other name alphabetically."""
    present = {str(split) for split in splits}
    return [split for split in SPLIT_NAMES if split in present] + sorted(present - set(SPLIT_NAMES))


def _in_split_order(counts: pd.Series) -> dict[str, int]:
    return {split: int(counts[split]) for split in _split_order(counts.index)}


# --------------------------------------------------------------------------------------------------- hashing


def perceptual_hash(image: np.ndarray, hash_size: int, image_type: str) -> np.ndarray:
    """(hash_size ** 2,) bool: ``imagehash.phash`` of the image, a line first padded to the common aspect."""
    # image: (height, width) uint8
    if image_type == "line":
        image = pad_to_aspect(image, LINE_CANVAS_ASPECT)
    return imagehash.phash(Image.fromarray(image), hash_size=hash_size).hash.ravel()


def pad_to_aspect(image: np.ndarray, aspect: float) -> np.ndarray:
    """The image padded on the right with its paper tone to ``aspect`` times its height (wider ones unchanged)."""
    height, width = image.shape
    canvas_width = round(aspect * height)
    if width >= canvas_width:
        return image
    paper = np.percentile(image, PAPER_PERCENTILE).astype(np.uint8)
    canvas = np.full((height, canvas_width), paper, dtype=np.uint8)
    canvas[:, :width] = image
    return canvas


def hash_sample_images(manifest: pd.DataFrame, store: LineImageStore, hash_size: int) -> np.ndarray:
    """(samples, hash_size ** 2) bool, in manifest order: the clean image's hash, else the degraded image's."""
    paths = manifest["clean_path"].where(manifest["clean_path"].notna(), manifest["degraded_path"])
    hashes = np.empty((len(manifest), hash_size * hash_size), dtype=bool)
    rows = zip(paths, manifest["image_type"], strict=True)
    for row, (path, image_type) in enumerate(tqdm(rows, total=len(manifest), desc="hash images", unit="image")):
        hashes[row] = perceptual_hash(store.read(path), hash_size, image_type)
    return hashes


# ----------------------------------------------------------------------------------------------- comparing


def hamming_distance_chunks(hashes_a: np.ndarray, hashes_b: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, distances) blocks of the (len_a, len_b) matrix of differing bits, a few rows of ``a`` at a time."""
    # hashes_a: (len_a, bits) bool, hashes_b: (len_b, bits) bool
    words_a, words_b = _packed_words(hashes_a), _packed_words(hashes_b)
    rows_per_chunk = max(1, DISTANCE_CHUNK_ELEMENTS // max(1, words_b.size))
    for start in range(0, len(words_a), rows_per_chunk):
        block = words_a[start : start + rows_per_chunk]
        yield start, np.bitwise_count(block[:, None, :] ^ words_b[None, :, :]).sum(axis=2, dtype=np.int64)


def _packed_words(hashes: np.ndarray) -> np.ndarray:
    """(n, words) uint64: the bits packed 64 to a word (zero-padded), so one XOR compares 64 bits."""
    packed = np.packbits(hashes, axis=1)
    packed = np.pad(packed, ((0, 0), (0, (-packed.shape[1]) % 8)))
    return np.ascontiguousarray(packed).view(np.uint64)


@dataclass
class CrossSplitComparison:
    pairs: list[tuple[int, int, int]]
    """(row a, row b, distance) of every near-duplicate pair, rows in manifest order, ``a`` in the earlier split."""
    nearest_distances: list[int]
    """Per sample that has another split to compare with: the distance to its nearest sample there."""
    pairs_compared: int

    @property
    def closest_distance(self) -> int | None:
        return min(self.nearest_distances, default=None)


def compare_across_splits(manifest: pd.DataFrame, hashes: np.ndarray, max_distance: int) -> CrossSplitComparison:
    """Every pair of samples in different splits (same image type): the near-duplicates and each one's nearest."""
    nearest = np.full(len(manifest), np.iinfo(np.int64).max, dtype=np.int64)
    pairs: list[tuple[int, int, int]] = []
    pairs_compared = 0
    splits = manifest["split"].to_numpy()
    image_types = manifest["image_type"].to_numpy()
    split_names = _split_order(splits)
    for image_type in sorted(set(image_types)):
        rows_of = {split: np.flatnonzero((splits == split) & (image_types == image_type)) for split in split_names}
        for split_a, split_b in combinations(split_names, 2):
            rows_a, rows_b = rows_of[split_a], rows_of[split_b]
            if len(rows_a) == 0 or len(rows_b) == 0:
                continue
            pairs_compared += len(rows_a) * len(rows_b)
            for start, distances in hamming_distance_chunks(hashes[rows_a], hashes[rows_b]):
                block_rows = rows_a[start : start + len(distances)]
                nearest[block_rows] = np.minimum(nearest[block_rows], distances.min(axis=1))
                nearest[rows_b] = np.minimum(nearest[rows_b], distances.min(axis=0))
                for i, j in zip(*np.nonzero(distances <= max_distance), strict=True):
                    pairs.append((int(block_rows[i]), int(rows_b[j]), int(distances[i, j])))
    compared = nearest < np.iinfo(np.int64).max
    return CrossSplitComparison(
        pairs=sorted(pairs, key=lambda pair: (pair[2], pair[0], pair[1])),
        nearest_distances=sorted(int(distance) for distance in nearest[compared]),
        pairs_compared=pairs_compared,
    )


def near_duplicate_records(manifest: pd.DataFrame, pairs: Sequence[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """One JSON-safe record per near-duplicate pair, the closest first."""
    sample_ids = manifest["sample_id"].astype(str).to_numpy()
    splits = manifest["split"].astype(str).to_numpy()
    texts = [None if pd.isna(text) else normalise_text(str(text)) for text in manifest["transcription"]]
    return [
        {
            "sample_id_a": sample_ids[a],
            "split_a": splits[a],
            "sample_id_b": sample_ids[b],
            "split_b": splits[b],
            "distance": distance,
            "same_transcription": None if texts[a] is None or texts[b] is None else texts[a] == texts[b],
        }
        for a, b, distance in pairs
    ]


def transcriptions_in_several_splits(manifest: pd.DataFrame) -> dict[str, Any]:
    """Information only: texts that occur (normalised, exactly) in more than one split."""
    with_text = manifest[manifest["transcription"].notna()]
    texts = pd.Series([normalise_text(str(text)) for text in with_text["transcription"]], index=with_text.index)
    splits_per_text = with_text["split"].groupby(texts).nunique()
    repeated = splits_per_text[splits_per_text > 1].index
    return {
        "texts": len(repeated),
        "samples": int(texts.isin(repeated).sum()),
        "examples": sorted(repeated)[:PAIRS_IN_MESSAGE],
    }


# ------------------------------------------------------------------------------------------------ findings


def _group_findings(groups: list[dict[str, Any]]) -> list[Finding]:
    if not groups:
        return []
    named = ", ".join(
        f"{record['group']!r} ({', '.join(f'{split} {count}' for split, count in record['samples_per_split'].items())})"
        for record in groups[:PAIRS_IN_MESSAGE]
    )
    more = f" and {len(groups) - PAIRS_IN_MESSAGE} more" if len(groups) > PAIRS_IN_MESSAGE else ""
    return [
        Finding(
            "problem",
            f"{len(groups)} group(s) have samples in more than one split: {named}{more}; valid and test then score "
            "hands or pages the model trained on. Keep each group in one split (fix splits.tsv or the source's "
            "group pattern, or leave the split to ingestion, which assigns whole groups).",
        )
    ]


def _near_duplicate_findings(near_duplicates: list[dict[str, Any]], max_distance: int, bits: int) -> list[Finding]:
    same_text = [record for record in near_duplicates if record["same_transcription"]]
    other = [record for record in near_duplicates if not record["same_transcription"]]
    within = f"within {max_distance} of {bits} hash bits"
    findings = []
    if same_text:
        findings.append(
            Finding(
                "problem",
                f"{len(same_text)} cross-split image pair(s) are near-duplicates ({within}) with the same "
                f"transcription: {_named_pairs(same_text)}; the model is scored on lines it trained on. Remove one "
                "of each pair, or move it into the other's split.",
            )
        )
    if other:
        findings.append(
            Finding(
                "warning",
                f"{len(other)} cross-split image pair(s) look alike ({within}) but their transcriptions differ or "
                f"are absent: {_named_pairs(other)}. Look at them: one image with two labels means one label is "
                "wrong; an unlabelled pair in two splits inflates restoration scores.",
            )
        )
    return findings


def _named_pairs(records: Sequence[dict[str, Any]]) -> str:
    named = ", ".join(
        f"{record['split_b']} {record['sample_id_b']} ~ {record['split_a']} {record['sample_id_a']} "
        f"(distance {record['distance']})"
        for record in records[:PAIRS_IN_MESSAGE]
    )
    more = f" and {len(records) - PAIRS_IN_MESSAGE} more" if len(records) > PAIRS_IN_MESSAGE else ""
    return named + more


def _all_fine_finding(
    manifest: pd.DataFrame, comparison: CrossSplitComparison, max_distance: int, bits: int
) -> Finding:
    grouped = int(manifest["group"].notna().sum())
    groups = (
        f"The {manifest['group'].nunique()} groups ({grouped} samples) are disjoint across splits"
        if grouped
        else "No sample has a group (each is its own)"
    )
    closest = "" if comparison.closest_distance is None else f" (closest: {comparison.closest_distance})"
    return Finding(
        "ok",
        f"{groups}, and none of the {comparison.pairs_compared} cross-split pairs of the "
        f"{len(manifest)} hashed images is within {max_distance} of {bits} hash bits{closest}.",
    )


def _markdown_sections(
    groups: list[dict[str, Any]], near_duplicates: list[dict[str, Any]], repeated_texts: dict[str, Any]
) -> list[str]:
    group_rows = [
        {
            "group": record["group"],
            "samples_per_split": ", ".join(f"{s} {n}" for s, n in record["samples_per_split"].items()),
        }
        for record in groups
    ]
    pair_columns = ["split_a", "sample_id_a", "split_b", "sample_id_b", "distance", "same_transcription"]
    return [
        "## Groups in several splits\n\n"
        + markdown_table(group_rows, ["group", "samples_per_split"], MARKDOWN_ROW_LIMIT),
        "## Near-duplicate images across splits\n\n"
        + markdown_table(near_duplicates, pair_columns, MARKDOWN_ROW_LIMIT),
        f"Equal transcriptions in more than one split (information, not a finding): {repeated_texts['texts']} "
        f"text(s), {repeated_texts['samples']} sample(s).",
    ]


# ----------------------------------------------------------------------------------------------------- plot


def plot_split_hygiene(details: Mapping[str, Any]) -> Figure:
    """Histogram of each sample's nearest cross-split hash distance, with the near-duplicate threshold."""
    distances = details["nearest_cross_split_distances"]
    max_distance = details["hash"]["max_distance"]
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    if distances:
        axes.hist(distances, bins=min(HISTOGRAM_BINS, max(1, max(distances) - min(distances) + 1)), color="tab:blue")
    axes.axvline(max_distance, color="tab:red", linestyle="--", label=f"near-duplicate at <= {max_distance}")
    axes.set(
        title=f"Nearest image in another split ({details['hash']['bits']}-bit hash)",
        xlabel="Hamming distance to the nearest sample of another split",
        ylabel="samples",
    )
    axes.legend()
    return figure


def audit_split_hygiene(
    manifest: pd.DataFrame, line_images: LineImageStore, diagnostics: DiagnosticsConfig
) -> AuditReport:
    """Groups and near-duplicate images shared by two splits."""
    report = split_hygiene_report(
        manifest, line_images, diagnostics.near_duplicate_hash_size, diagnostics.near_duplicate_max_distance
    )
    return report.with_figure(plot_split_hygiene(report.details))
