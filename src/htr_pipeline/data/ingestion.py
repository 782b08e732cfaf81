"""The ingestion steps as plain functions: sources -> splits -> images + manifest + rejects -> charset."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.config import DataConfig
from htr_pipeline.data.materialise import MANIFEST_COLUMNS, MaterialisedSample, materialise_all
from htr_pipeline.data.report import missing_characters_by_split
from htr_pipeline.data.sources import Reject, SampleCandidate
from htr_pipeline.data.splits import assign_unsplit_groups, check_required_splits

REJECT_COLUMNS: tuple[str, ...] = ("source", "sample_id", "path", "reason", "detail")


class TooManyRejectsError(ValueError):
    """More inputs were rejected than ``data.max_reject_fraction`` allows."""


def assign_splits(candidates: Sequence[SampleCandidate], data: DataConfig) -> list[SampleCandidate]:
    """Keep the splits a source gives; give the others one by group (each ungrouped sample is its own group)."""
    unsplit_keys = [_group_key(c) for c in candidates if c.split is None]
    split_of_key = assign_unsplit_groups(unsplit_keys, data.split_fractions.model_dump(), data.seed)
    return [c if c.split is not None else dataclasses.replace(c, split=split_of_key[_group_key(c)]) for c in candidates]


def _group_key(candidate: SampleCandidate) -> str:
    return candidate.group or candidate.sample_id


@dataclasses.dataclass
class IngestedDataset:
    images: dict[str, np.ndarray]
    manifest: pd.DataFrame
    rejects: pd.DataFrame


def ingest(
    candidates: Sequence[SampleCandidate], source_rejects: Sequence[Reject], data: DataConfig
) -> IngestedDataset:
    """Materialise all candidates, then fail loudly if too much was rejected or a needed split is empty."""
    samples, image_rejects = materialise_all(candidates, data)
    rejects = rejects_table([*source_rejects, *image_rejects])
    check_reject_fraction(rejects, len(samples), data.max_reject_fraction)
    manifest = manifest_table(samples)
    check_required_splits(manifest["split"].value_counts().to_dict())
    return IngestedDataset(images=image_files(samples), manifest=manifest, rejects=rejects)


def image_files(samples: Sequence[MaterialisedSample]) -> dict[str, np.ndarray]:
    files = {}
    for sample in samples:
        files[sample.manifest_row["clean_path"]] = sample.clean
        files[sample.manifest_row["degraded_path"]] = sample.degraded
    return files


def manifest_table(samples: Sequence[MaterialisedSample]) -> pd.DataFrame:
    manifest = pd.DataFrame([sample.manifest_row for sample in samples], columns=list(MANIFEST_COLUMNS))
    return manifest.astype(
        {
            "width": "int64",
            "height": "int64",
            "original_width": "int64",
            "original_height": "int64",
            "width_scale": "float64",
        }
    )


def rejects_table(rejects: Sequence[Reject]) -> pd.DataFrame:
    rows = [{**dataclasses.asdict(reject), "reason": str(reject.reason)} for reject in rejects]
    return pd.DataFrame(rows, columns=list(REJECT_COLUMNS))


def check_reject_fraction(rejects: pd.DataFrame, accepted: int, max_reject_fraction: float) -> None:
    total = accepted + len(rejects)
    fraction = len(rejects) / total if total else 0.0
    if fraction <= max_reject_fraction:
        return
    reasons = Counter(rejects["reason"])
    examples = "\n".join(
        f"    {row.reason}: {row.path or row.sample_id}: {row.detail}" for row in rejects.head(8).itertuples()
    )
    raise TooManyRejectsError(
        f"{len(rejects)} of {total} inputs rejected ({fraction:.1%}) > data.max_reject_fraction="
        f"{max_reject_fraction:.1%}. Reasons: {dict(reasons)}. First rejects:\n{examples}\n"
        "Fix the inputs, or raise data.max_reject_fraction if these losses are acceptable."
    )


def charset_document(manifest: pd.DataFrame) -> dict[str, Any]:
    """The charset built from the train split, plus the characters other splits have and it lacks."""
    train_texts = manifest.loc[manifest["split"] == "train", "transcription"].dropna()
    charset = Charset.from_texts(train_texts)
    return {**charset.to_dict(), "missing_by_split": missing_characters_by_split(charset, manifest)}
