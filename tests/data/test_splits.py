from collections import Counter

import pytest

from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import assign_splits
from htr_pipeline.data.sources import SampleCandidate
from htr_pipeline.data.sources.pixels import ImageFile
from htr_pipeline.data.splits import EmptySplitError, assign_unsplit_groups, check_required_splits


def _candidates(groups: int, per_group: int) -> list[SampleCandidate]:
    return [
        SampleCandidate(
            sample_id=f"s:{g}-{i}",
            source="s",
            source_kind="line_folder",
            image_type="line",
            group=f"s:writer{g}",
            split=None,
            transcription="x",
            clean_pixels=ImageFile(f"lines/{g}-{i}.png"),
        )
        for g in range(groups)
        for i in range(per_group)
    ]


def _config(seed: int = 1) -> DataConfig:
    return DataConfig.model_validate(
        {
            "seed": seed,
            "sources": [{"kind": "line_folder", "path": "."}],
            "split_fractions": {"train": 0.6, "valid": 0.2, "test": 0.2},
        }
    )


def test_groups_never_straddle_splits_and_fractions_hold():
    assigned = assign_splits(_candidates(groups=20, per_group=5), _config())
    split_of_group: dict[str, set[str]] = {}
    for candidate in assigned:
        split_of_group.setdefault(candidate.group, set()).add(candidate.split)
    assert all(len(splits) == 1 for splits in split_of_group.values())
    sizes = {split: sum(c.split == split for c in assigned) for split in ("train", "valid", "test")}
    assert sizes == {"train": 60, "valid": 20, "test": 20}


def test_same_seed_same_splits_other_seed_other_splits():
    candidates = _candidates(groups=30, per_group=2)
    first = [c.split for c in assign_splits(candidates, _config(seed=1))]
    assert first == [c.split for c in assign_splits(candidates, _config(seed=1))]
    assert first != [c.split for c in assign_splits(candidates, _config(seed=2))]


def test_splits_given_by_the_source_are_kept():
    candidates = [c.__class__(**{**c.__dict__, "split": "test"}) for c in _candidates(groups=3, per_group=1)]
    assert {c.split for c in assign_splits(candidates, _config())} == {"test"}


def test_largest_remainder_rounding_keeps_small_splits_alive():
    # 7 groups x (0.8, 0.1, 0.1) = (5.6, 0.7, 0.7): floors (5, 0, 0), the two largest remainders get one each
    assignment = assign_unsplit_groups([f"g{i}" for i in range(7)], {"train": 0.8, "valid": 0.1, "test": 0.1}, 0)
    assert sorted(assignment) == [f"g{i}" for i in range(7)]
    assert Counter(assignment.values()) == {"train": 5, "valid": 1, "test": 1}


def test_empty_required_split_is_an_error():
    with pytest.raises(EmptySplitError, match="valid"):
        check_required_splits({"train": 10, "test": 3})
    check_required_splits({"train": 10, "valid": 1})
