"""Label convention check: does the recognizer read clean lines best under the charset's own label convention?

The previous system trained with the CTC blank at class 0 and evaluated with the blank last, so every reading was
shifted by one class and nobody noticed. Here the recognizer's greedy best path on clean validation lines is
decoded under the charset's convention and under the off-by-one alternatives; if an alternative reads the lines
clearly better, the charset file and the recognizer weights disagree.

Every alternative assumes the recognizer has :attr:`Charset.num_classes` outputs (its head was built from this
charset). A class an alternative maps outside the symbols reads as :data:`OUTSIDE_SYMBOLS`, a placeholder that
counts as an error (dropping it would reward a convention for reading nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from htr_pipeline.charset import BLANK_INDEX, Charset, normalise_text
from htr_pipeline.config import DiagnosticsConfig
from htr_pipeline.diagnostics.recognizer_readings import LineReading
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, checkpoint_run
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.metrics import ErrorRates, character_error_rates

NAME = "label_convention"
TITLE = "Label convention check"

OUTSIDE_SYMBOLS = "\ufffd"
"""What a class with no symbol under a convention reads as (U+FFFD, the replacement character)."""
INCONCLUSIVE_CER = 0.9
"""Above this corpus CER under the charset's convention the recognizer barely reads, so no convention can win."""
EXAMPLE_LINES = 3

CHARSET_CONVENTION = "charset"
"""The charset's own convention, decoded by :meth:`Charset.decode_greedy` (the owner of the blank index)."""


@dataclass(frozen=True)
class AlternativeConvention:
    """An off-by-one hypothesis: where the blank is and which class reads ``symbols[0]``."""

    blank_is_last: bool
    """True: the blank is the last class; False: it is where the charset puts it."""
    first_symbol_class: int
    """Class index that reads ``symbols[0]``; class ``k`` reads ``symbols[k - first_symbol_class]``."""
    description: str


ALTERNATIVE_CONVENTIONS: dict[str, AlternativeConvention] = {
    "blank_last": AlternativeConvention(
        blank_is_last=True, first_symbol_class=0, description="blank is the last class, class k is symbols[k]"
    ),
    "labels_shifted_up": AlternativeConvention(
        blank_is_last=False,
        first_symbol_class=0,
        description=f"blank {BLANK_INDEX}, class k is symbols[k] (one symbol up)",
    ),
    "labels_shifted_down": AlternativeConvention(
        blank_is_last=False,
        first_symbol_class=2,
        description=f"blank {BLANK_INDEX}, class k is symbols[k - 2] (one symbol down)",
    ),
}
CONVENTIONS: tuple[str, ...] = (CHARSET_CONVENTION, *ALTERNATIVE_CONVENTIONS)
CONVENTION_DESCRIPTIONS: dict[str, str] = {
    CHARSET_CONVENTION: "the charset's own, read by Charset.decode_greedy",
    **{name: convention.description for name, convention in ALTERNATIVE_CONVENTIONS.items()},
}


# ------------------------------------------------------------------------------------------------ decoding


def decode_with_convention(best_path: Iterable[int], charset: Charset, convention: str) -> str:
    """Text of a CTC best path (argmax class per time step) read under ``convention``: merge repeats, drop the
    convention's blank, read each class as its symbol (:data:`OUTSIDE_SYMBOLS` where it has none)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown label convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    return "".join(_read_class(charset, convention, index) for index in _merge_repeats(best_path))


def _merge_repeats(best_path: Iterable[int]) -> list[int]:
    merged: list[int] = []
    for index in (int(value) for value in best_path):
        if not merged or index != merged[-1]:
            merged.append(index)
    return merged


def _read_class(charset: Charset, convention: str, class_index: int) -> str:
    """The symbol one class reads as ('' for the blank)."""
    if convention == CHARSET_CONVENTION:
        if not 0 <= class_index < charset.num_classes:
            return OUTSIDE_SYMBOLS  # a recognizer with more outputs than the charset; reported apart
        return charset.decode_greedy([class_index])
    alternative = ALTERNATIVE_CONVENTIONS[convention]
    blank_class = charset.num_classes - 1 if alternative.blank_is_last else charset.blank_index
    if class_index == blank_class:
        return ""
    symbol_position = class_index - alternative.first_symbol_class
    if not 0 <= symbol_position < len(charset.symbols):
        return OUTSIDE_SYMBOLS
    return charset.symbols[symbol_position]


# -------------------------------------------------------------------------------------------------- report


def label_convention_report(
    logits: Sequence[np.ndarray], references: Sequence[str], charset: Charset, margin: float
) -> AuditReport:
    """Corpus CER of the clean lines' greedy readings under each convention, and whether the charset's wins.

    ``logits[i]``: (time_steps_i, num_classes), the recognizer's output for line ``i`` cropped to its own time
    steps; ``references[i]``: its ground-truth text. ``margin``: how much lower (absolute CER) an alternative
    must read before the charset's convention is called wrong.
    """
    _check_inputs(logits, references, margin)
    best_paths = [np.asarray(line_logits).argmax(axis=1) for line_logits in logits]
    normalised_references = [normalise_text(reference) for reference in references]
    readings = {
        convention: [decode_with_convention(path, charset, convention) for path in best_paths]
        for convention in CONVENTIONS
    }
    error_rates = {
        convention: character_error_rates(normalised_references, convention_readings)
        for convention, convention_readings in readings.items()
    }
    output_classes = sorted({int(np.shape(line_logits)[1]) for line_logits in logits})
    findings = [*_class_count_findings(output_classes, charset), _convention_finding(error_rates, margin)]
    convention_rows = _convention_rows(error_rates)
    example_rows = _example_rows(normalised_references, readings)
    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={
            "lines": len(best_paths),
            "margin": margin,
            "charset_classes": charset.num_classes,
            "output_classes": output_classes,
            "cer": {convention: rates.corpus for convention, rates in error_rates.items()},
            "conventions": convention_rows,
            "examples": example_rows,
        },
        markdown_sections=[
            "## CER per convention\n\n"
            + markdown_table(convention_rows, ["convention", "cer", "edits", "reference_length", "description"]),
            "## Example readings\n\n" + markdown_table(_flat_examples(example_rows), ["reference", *CONVENTIONS]),
        ],
    )


def _check_inputs(logits: Sequence[np.ndarray], references: Sequence[str], margin: float) -> None:
    if len(logits) != len(references):
        raise ValueError(f"got logits for {len(logits)} lines but {len(references)} references")
    if not logits:
        raise ValueError("no validation lines to read: the label convention check needs at least one")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (an absolute CER difference), got {margin}")
    for line, line_logits in enumerate(logits):
        if np.ndim(line_logits) != 2:
            raise ValueError(f"logits of line {line} must be (time_steps, num_classes), got {np.shape(line_logits)}")


def _class_count_findings(output_classes: list[int], charset: Charset) -> list[Finding]:
    if output_classes == [charset.num_classes]:
        return []
    return [
        Finding(
            "problem",
            f"the recognizer emits {', '.join(map(str, output_classes))} classes but the charset has "
            f"{charset.num_classes} ({len(charset.symbols)} symbols + blank): the checkpoint was trained with "
            "another charset; load the charset file it was trained with",
        )
    ]


def _convention_finding(error_rates: dict[str, ErrorRates], margin: float) -> Finding:
    charset_cer = error_rates[CHARSET_CONVENTION].corpus
    best_alternative = min(ALTERNATIVE_CONVENTIONS, key=lambda name: error_rates[name].corpus)
    alternative_cer = error_rates[best_alternative].corpus
    if charset_cer - alternative_cer > margin:
        return Finding(
            "problem",
            f"the charset and the recognizer weights disagree: the {best_alternative} convention "
            f"({CONVENTION_DESCRIPTIONS[best_alternative]}) reads CER {alternative_cer:.3f} vs {charset_cer:.3f} "
            "under the charset's own; check the charset file the checkpoint was trained with",
        )
    if charset_cer > INCONCLUSIVE_CER:
        return Finding(
            "warning",
            f"the recognizer barely reads clean lines (CER {charset_cer:.3f} under the charset's convention, best "
            f"alternative {best_alternative} {alternative_cer:.3f}): the check is inconclusive; train or load a "
            "recognizer that reads before trusting any CER",
        )
    return Finding(
        "ok",
        f"the charset's convention reads clean lines best (CER {charset_cer:.3f}; best alternative "
        f"{best_alternative} {alternative_cer:.3f}, margin {margin})",
    )


def _convention_rows(error_rates: dict[str, ErrorRates]) -> list[dict[str, Any]]:
    return [
        {
            "convention": convention,
            "description": CONVENTION_DESCRIPTIONS[convention],
            "cer": rates.corpus,
            "edits": rates.edits,
            "reference_length": rates.reference_length,
        }
        for convention, rates in error_rates.items()
    ]


def _example_rows(references: Sequence[str], readings: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"reference": reference, "readings": {convention: readings[convention][line] for convention in readings}}
        for line, reference in enumerate(references[:EXAMPLE_LINES])
    ]


def _flat_examples(example_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"reference": row["reference"], **row["readings"]} for row in example_rows]


def audit_label_convention(
    checkpoint: AuditedCheckpoint, readings: list[LineReading], diagnostics: DiagnosticsConfig
) -> AuditReport:
    """The checkpoint's recognizer's readings of clean lines under its charset's convention and the others."""
    trained = checkpoint_run(checkpoint)
    return label_convention_report(
        [reading.logits for reading in readings],
        [reading.reference for reading in readings],
        trained.charset,
        diagnostics.label_convention_margin,
    )
