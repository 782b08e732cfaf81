"""Early stopping and best-metric tracking on the previous system's val/combined history."""

from __future__ import annotations

import math

import pytest

from htr_pipeline.training.early_stopping import BestMetricTracker, EarlyStopping, is_improvement

# val/combined of the previous system's epochs 17-26 (higher is better)
PREVIOUS_SYSTEM_COMBINED = dict(
    zip(range(17, 27), [25.91, 25.5, 25.6, 25.4, 26.63, 26.1, 26.2, 26.74, 26.3, 26.4], strict=True)
)


def first_stop(stopper: EarlyStopping, history: dict[int, float]) -> int | None:
    for epoch, value in history.items():
        if stopper.update(epoch, value).should_stop:
            return epoch
    return None


def test_patience_two_stops_at_epoch_19():
    # 17: first value, best. 18: 25.5 < 25.91, 1 without improvement. 19: 25.6 < 25.91, 2 -> stop.
    stopper = EarlyStopping("max", patience=2, min_delta=0.01)
    assert first_stop(stopper, PREVIOUS_SYSTEM_COMBINED) == 19
    assert (stopper.best.best_value, stopper.best.best_epoch) == (25.91, 17)


def test_patience_three_keeps_going_through_the_later_improvements():
    # 18, 19, 20 -> 3 would stop at 20 with patience 3; with patience 4: 21 (26.63) improves, 22, 23 -> 2,
    # 24 (26.74 > 26.63 + 0.01) improves, 25, 26 -> 2: no stop, best epoch 24.
    stopper = EarlyStopping("max", patience=4, min_delta=0.01)
    assert first_stop(stopper, PREVIOUS_SYSTEM_COMBINED) is None
    assert (stopper.best.best_value, stopper.best.best_epoch) == (26.74, 24)
    assert first_stop(EarlyStopping("max", patience=3, min_delta=0.01), PREVIOUS_SYSTEM_COMBINED) == 20


def test_min_delta_decides_what_counts_as_improvement():
    # With min_delta 0.2, 26.74 is not > 26.63 + 0.2: after 21, epochs 22, 23, 24, 25 -> 4 -> stop at 25.
    stopper = EarlyStopping("max", patience=4, min_delta=0.2)
    assert first_stop(stopper, PREVIOUS_SYSTEM_COMBINED) == 25
    assert stopper.best.best_epoch == 21


def test_mode_min_on_cer():
    stopper = EarlyStopping("min", patience=2, min_delta=0.0)
    decisions = [stopper.update(epoch, cer) for epoch, cer in enumerate([0.09, 0.07, 0.07, 0.08], start=1)]
    assert [decision.improved for decision in decisions] == [True, True, False, False]
    assert [decision.should_stop for decision in decisions] == [False, False, False, True]
    assert decisions[-1].best_epoch == 2


def test_nan_never_improves():
    assert not is_improvement(math.nan, None, "max", 0.0)
    assert not is_improvement(math.nan, 1.0, "min", 0.0)
    assert is_improvement(1.0, None, "min", 0.0)
    tracker = BestMetricTracker("val/cer", "min")
    assert not tracker.update(1, math.nan)
    assert tracker.best_value is None


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping("max", patience=0)
    with pytest.raises(ValueError, match="mode"):
        BestMetricTracker("val/psnr", "up")  # type: ignore[arg-type]


def test_state_round_trip_continues_identically():
    epochs = list(PREVIOUS_SYSTEM_COMBINED.items())
    uninterrupted = EarlyStopping("max", patience=3, min_delta=0.01)
    expected = [uninterrupted.update(epoch, value) for epoch, value in epochs]

    before_resume = EarlyStopping("max", patience=3, min_delta=0.01)
    for epoch, value in epochs[:2]:
        before_resume.update(epoch, value)
    resumed = EarlyStopping("max", patience=3, min_delta=0.01)
    resumed.load_state_dict(before_resume.state_dict())
    assert [resumed.update(epoch, value) for epoch, value in epochs[2:]] == expected[2:]


def test_best_metric_tracker_round_trip_and_mismatch():
    tracker = BestMetricTracker("val/cer", "min")
    tracker.update(1, 0.2)
    tracker.update(2, 0.1)
    restored = BestMetricTracker("val/cer", "min")
    restored.load_state_dict(tracker.state_dict())
    assert (restored.best_value, restored.best_epoch) == (0.1, 2)
    with pytest.raises(ValueError, match="val/psnr"):
        BestMetricTracker("val/psnr", "max").load_state_dict(tracker.state_dict())
