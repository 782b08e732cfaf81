"""Split names and the deterministic, group-disjoint split assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from htr_pipeline.config import SPLIT_NAMES

REQUIRED_SPLITS: tuple[str, ...] = ("train", "valid")
"""Splits that must hold at least one sample after ingestion; ``test`` may be empty by design (the previous system
had none)."""


class EmptySplitError(ValueError):
    """A split that training needs ended up without samples."""


def assign_unsplit_groups(group_keys: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Give every group key a split, keeping each group whole.

    The keys are sorted, then shuffled with ``seed``, and cut into consecutive runs whose sizes follow the
    fractions (largest remainder rounding), so the same keys and seed always give the same splits.
    """
    keys = sorted(set(group_keys))
    order = np.random.default_rng(seed).permutation(len(keys))
    shuffled = [keys[i] for i in order]
    counts = _largest_remainder_counts(len(shuffled), [fractions[name] for name in SPLIT_NAMES])
    assignment: dict[str, str] = {}
    start = 0
    for split, count in zip(SPLIT_NAMES, counts, strict=True):
        for key in shuffled[start : start + count]:
            assignment[key] = split
        start += count
    return assignment


def _largest_remainder_counts(total: int, fractions: Sequence[float]) -> list[int]:
    exact = [fraction * total for fraction in fractions]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def groups_in_several_splits(split_of_sample: Sequence[str], group_of_sample: Sequence[str | None]) -> list[str]:
    """Groups (writers/pages) that have samples in more than one split."""
    splits_of_group: dict[str, set[str]] = {}
    for split, group in zip(split_of_sample, group_of_sample, strict=True):
        if group is not None:
            splits_of_group.setdefault(group, set()).add(split)
    return sorted(group for group, splits in splits_of_group.items() if len(splits) > 1)


def check_required_splits(split_sizes: Mapping[str, int]) -> None:
    empty = [split for split in REQUIRED_SPLITS if split_sizes.get(split, 0) == 0]
    if empty:
        raise EmptySplitError(
            f"split(s) {', '.join(empty)} ended up empty (sizes: {dict(split_sizes)}). Add data, change "
            "data.split_fractions or the sources' splits.tsv / lines_per_split, and see the rejects report."
        )
