"""Check that what a run logged to MLflow is what it was configured with and what really ran.

The previous system's JSON config said ``early_stopping: true, patience: 15`` while its launcher read another key
shape and MLflow logged ``early_stopping: False, patience: 0``. This module compares a config (plain data, as
:func:`htr_pipeline.config.effective_parameters` gives it) with a run's logged params, key by key, using the
flattening rule the params were logged with (:func:`htr_pipeline.config.flatten_as_logged`): nested dicts become
``.``-joined keys, every other value is ``str(value)`` (lists and ``None`` included), empty dicts are not logged.

Two comparisons make a verdict: the checkpoint's config (what really ran) against the logged params, and the
current project config against them. A difference in the first means the run's record is wrong (``problem``);
a difference only in the second means the project changed since the run (``warning``); a run without a
checkpoint config can only be half checked (``warning``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from htr_pipeline.checkpoints import TrainedRunConfig
from htr_pipeline.config import DataConfig, TrainingConfig, flatten_as_logged
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, AuditedRun
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding
from htr_pipeline.trained_run import TrainedRun

NAME = "config_audit"
TITLE = "Config audit"

MismatchKind = Literal["mismatch", "missing", "unexpected"]


@dataclass(frozen=True)
class ParameterMismatch:
    """One key whose config value and logged value disagree.

    ``missing``: in the config, not logged; ``unexpected``: logged, not in the config.
    """

    key: str
    expected: str | None
    logged: str | None
    kind: MismatchKind


def _values_equal(expected: str, logged: str) -> bool:
    """Equal as strings, as numbers ("15" vs "15.0") or as booleans regardless of case ("True" vs "true")."""
    if expected == logged:
        return True
    booleans = {"true", "false"}
    if expected.lower() in booleans or logged.lower() in booleans:
        return expected.lower() == logged.lower()
    try:
        expected_number, logged_number = float(expected), float(logged)
    except ValueError:
        return False
    return expected_number == logged_number


def _in_sections(key: str, sections: Sequence[str] | None) -> bool:
    return sections is None or key.split(".", 1)[0] in sections


def compare_with_logged(
    config: Mapping[str, Any], logged_params: Mapping[str, str], sections: Sequence[str] | None = None
) -> list[ParameterMismatch]:
    """Every key where the flattened ``config`` and ``logged_params`` disagree, sorted by key.

    With ``sections``, only keys under those top-level sections are compared, on both sides (a run logs
    every section; a checkpoint stores only ``data`` and ``training``).
    """
    expected = {key: value for key, value in flatten_as_logged(config).items() if _in_sections(key, sections)}
    logged = {key: str(value) for key, value in logged_params.items() if _in_sections(key, sections)}
    mismatches = []
    for key in sorted(expected.keys() | logged.keys()):
        if key not in logged:
            mismatches.append(ParameterMismatch(key, expected[key], None, "missing"))
        elif key not in expected:
            mismatches.append(ParameterMismatch(key, None, logged[key], "unexpected"))
        elif not _values_equal(expected[key], logged[key]):
            mismatches.append(ParameterMismatch(key, expected[key], logged[key], "mismatch"))
    return mismatches


def _mismatch_table(mismatches: list[ParameterMismatch] | None) -> str:
    if mismatches is None:
        return "No checkpoint config available: not compared."
    if not mismatches:
        return "No differences."
    rows = ["| key | config value | logged value | kind |", "| --- | --- | --- | --- |"]
    for mismatch in mismatches:
        cells = [mismatch.key, _cell(mismatch.expected), _cell(mismatch.logged), mismatch.kind]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _cell(value: str | None) -> str:
    return "(absent)" if value is None else f"`{value}`".replace("|", "\\|")


def _keys(mismatches: list[ParameterMismatch], limit: int = 6) -> str:
    shown = ", ".join(mismatch.key for mismatch in mismatches[:limit])
    return shown + (f" and {len(mismatches) - limit} more" if len(mismatches) > limit else "")


def _config_findings(
    against_current: list[ParameterMismatch], against_checkpoint: list[ParameterMismatch] | None, logged: int
) -> list[Finding]:
    findings = []
    if against_checkpoint:
        findings.append(
            Finding(
                "problem",
                f"the logged params differ from the config the run's checkpoint says really ran, in "
                f"{len(against_checkpoint)} keys ({_keys(against_checkpoint)}): the run's MLflow record is wrong; "
                "trust the checkpoint's config and fix whatever logged the params",
            )
        )
    elif against_checkpoint is None:
        findings.append(Finding("warning", "no checkpoint config available: what really ran could not be checked"))
    if against_current:
        findings.append(
            Finding(
                "warning",
                f"the current project config differs from the run's logged params in {len(against_current)} keys "
                f"({_keys(against_current)}): the project changed since this run, and re-running it would not "
                "reproduce it",
            )
        )
    if not findings:
        findings.append(
            Finding("ok", f"all {logged} logged params match the checkpoint's config and the current config")
        )
    return findings


def audit_run_config(
    run_params: Mapping[str, str],
    run_id: str,
    current_config: Mapping[str, Any],
    checkpoint_config: Mapping[str, Any] | None,
    sections: Sequence[str],
) -> AuditReport:
    """Compare a run's logged params with its checkpoint's config and with the current config.

    A difference from the checkpoint's config is a ``problem`` (the record is wrong); a difference only from
    the current config is a ``warning`` (the project changed since the run).
    """
    against_current = compare_with_logged(current_config, run_params, sections)
    against_checkpoint = (
        None if checkpoint_config is None else compare_with_logged(checkpoint_config, run_params, sections)
    )
    logged = sum(1 for key in run_params if _in_sections(key, sections))
    return AuditReport(
        audit=NAME,
        title=f"{TITLE} of run `{run_id}`",
        findings=_config_findings(against_current, against_checkpoint, logged),
        details={
            "run_id": run_id,
            "sections": list(sections),
            "logged_params_compared": logged,
            "against_checkpoint": (
                None if against_checkpoint is None else [asdict(mismatch) for mismatch in against_checkpoint]
            ),
            "against_current": [asdict(mismatch) for mismatch in against_current],
        },
        markdown_sections=[
            "## Checkpoint config (what ran) vs logged params\n\n" + _mismatch_table(against_checkpoint),
            "## Current config vs logged params\n\n" + _mismatch_table(against_current),
        ],
    )


AUDITED_SECTIONS = tuple(TrainedRunConfig.model_fields)
"""What a training run depends on; the evaluation and diagnostics sections may change freely."""


def audit_config(
    run: AuditedRun, checkpoint: AuditedCheckpoint, data: DataConfig, training: TrainingConfig
) -> AuditReport:
    """The run's logged params against its checkpoint's config as stored, and against the current config."""
    current = TrainedRunConfig(data=data, training=training).model_dump(mode="json")
    stored = checkpoint.config_as_stored if isinstance(checkpoint, TrainedRun) else None
    return audit_run_config(run.params, run.run_id, current, stored, AUDITED_SECTIONS)
