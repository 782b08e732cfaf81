"""The settings that differ between runs, read from the validated config each run logged."""

from __future__ import annotations

from collections.abc import Mapping

UNSET = "(not logged)"
"""Shown for a key one run logged and the other did not (a setting added to the schema since)."""


def differing_settings(baseline: Mapping[str, str], params: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{key: (baseline value, this run's value)}`` for every logged param whose value differs, in key order."""
    return {
        key: (baseline.get(key, UNSET), params.get(key, UNSET))
        for key in sorted(set(baseline) | set(params))
        if baseline.get(key, UNSET) != params.get(key, UNSET)
    }


def settings_text(differences: Mapping[str, tuple[str, str]]) -> str:
    """``training.losses.weights.ctc 1.0 -> 3.0; training.gan_seed None -> 43`` (or ``(baseline settings)``)."""
    if not differences:
        return "(baseline settings)"
    return "; ".join(f"{key} {before} -> {after}" for key, (before, after) in differences.items())
