"""Charset coverage: characters a split needs that the charset lacks, symbols train barely shows, and places
where Unicode normalisation hides two spellings of one character.

Every label goes through :func:`~htr_pipeline.charset.normalise_text` (NFC) before it is encoded, so the rules
below judge the normalised text for coverage and the stored (raw) text for normalisation:

- **Missing characters.** A character of a split's normalised transcriptions that the charset lacks is a
  ``problem`` in train (those labels cannot be encoded) and a ``warning`` in valid or test (the recognizer can
  never output it, so that split's CER cannot fall below its share of the split's characters).
- **Rare symbols.** A charset symbol that occurs fewer than ``rare_count`` times in the train transcriptions
  (never, included) is a ``warning``: the recognizer has too few examples to learn it.
- **Text not in NFC.** Stored transcriptions that differ from their NFC form are a ``warning``: NFC composes
  them silently before encoding, so their labels are right, but anything that reads the stored text as is
  (a CER reference, another tool) sees other code points.
- **One character, several spellings.** The transcriptions are cut into clusters (a base character and the
  combining marks after it); clusters with equal NFC forms but different code points (``"é"`` U+00E9 and
  ``"e"`` + U+0301) are spellings of one character. When the charset holds the code points of two or more of
  those spellings, it has two label sequences for that character and which one a line gets depends on whether
  its text was normalised: a ``problem``. Otherwise NFC fixes them silently and they are named in the NFC
  warning.
- **Combining marks among the symbols.** A :class:`~htr_pipeline.charset.Charset` only holds NFC symbols, so no
  two symbols are canonically equivalent; but a combining mark as a symbol is a ``warning``. NFC keeps a mark
  apart only after a base with no precomposed form (legitimate: medieval ``q̃``); a mark that also composes with
  a base symbol into another symbol (``e`` + U+0301 = ``é``) usually means the charset was built from
  decomposed (NFD) text. It only becomes a ``problem`` when the texts use both spellings (the rule above).

With none of these, the report holds one ``ok`` finding with the numbers.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from htr_pipeline.charset import NORMALIZATION_FORM, Charset, normalise_text
from htr_pipeline.config import SPLIT_NAMES, DiagnosticsConfig
from htr_pipeline.data.report import missing_characters as data_set_missing_characters
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table

NAME = "charset_coverage"
TITLE = "Charset coverage"

EXAMPLE_SAMPLES = 3
"""Sample ids kept per character, spelling or split as examples."""
CHARACTERS_IN_MESSAGE = 12
"""A finding names at most this many characters; the JSON report and the tables hold all of them."""
MARKDOWN_ROW_LIMIT = 40
TRAIN_SPLIT = "train"
MISSING_COLOURS = {"train": "tab:red", "valid": "tab:purple", "test": "tab:brown"}


# ----------------------------------------------------------------------------------------------- the report


def charset_coverage_report(manifest: pd.DataFrame, charset: Charset, rare_count: int) -> AuditReport:
    """Missing characters per split, rare train symbols and normalisation collisions (rules: module docstring)."""
    lines = lines_with_text(manifest)
    splits = split_order(lines["split"])
    missing_by_split = {split: missing_characters(lines[lines["split"] == split], charset) for split in splits}
    symbol_counts = train_symbol_counts(lines, charset)
    rare_symbols = [
        {"symbol": symbol, "shown": describe_character(symbol), "train_count": count}
        for symbol, count in sorted(symbol_counts.items(), key=lambda item: (item[1], item[0]))
        if count < rare_count
    ]
    non_nfc_lines = {split: non_nfc_summary(lines[lines["split"] == split]) for split in splits}
    spelling_collisions = find_spelling_collisions(lines, charset)
    combining_symbols = find_combining_symbols(charset)

    findings = [
        *_missing_findings(missing_by_split, lines, charset),
        *_rare_findings(rare_symbols, rare_count, len(charset.symbols)),
        *_spelling_problem_findings(spelling_collisions),
        *_non_nfc_findings(non_nfc_lines, spelling_collisions),
        *_combining_symbol_findings(combining_symbols),
    ]
    if not findings:
        findings.append(_all_fine_finding(lines, splits, charset, symbol_counts, rare_count))

    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={
            "normalization": NORMALIZATION_FORM,
            "charset_size": len(charset.symbols),
            "rare_count": rare_count,
            "lines_with_text_per_split": {split: int((lines["split"] == split).sum()) for split in splits},
            "missing_by_split": missing_by_split,
            "rare_symbols": rare_symbols,
            "non_nfc_lines": non_nfc_lines,
            "collisions": {"spellings": spelling_collisions, "combining_symbols": combining_symbols},
            "symbol_counts": symbol_counts,
        },
        markdown_sections=_markdown_sections(missing_by_split, rare_symbols, non_nfc_lines, spelling_collisions),
    )


# ------------------------------------------------------------------------------------------------- the data


def lines_with_text(manifest: pd.DataFrame) -> pd.DataFrame:
    """``sample_id``, ``split``, ``raw`` (as stored) and ``normalised`` text of every sample with a transcription."""
    with_text = manifest[manifest["transcription"].notna()]
    raw = with_text["transcription"].astype(str)
    return pd.DataFrame(
        {
            "sample_id": with_text["sample_id"].astype(str).to_numpy(),
            "split": with_text["split"].astype(str).to_numpy(),
            "raw": raw.to_numpy(),
            "normalised": [normalise_text(text) for text in raw],
        }
    )


def split_order(splits: Iterable[str]) -> list[str]:
    """The splits present: train, valid, test first, then any other name alphabetically."""
    present = set(splits)
    return [split for split in SPLIT_NAMES if split in present] + sorted(present - set(SPLIT_NAMES))


def describe_character(character: str) -> str:
    """``'é' (U+00E9)``; marks, spaces and controls by code point and name only, so invisible ones show."""
    code_point = f"U+{ord(character):04X}"
    if unicodedata.category(character)[0] in "MZC":
        return f"{code_point} {unicodedata.name(character, 'unnamed')}"
    return f"{character!r} ({code_point})"


def describe_spelling(spelling: str) -> str:
    """A sequence of code points, each as :func:`describe_character` shows it, joined by ``+``."""
    return " + ".join(describe_character(character) for character in spelling)


def missing_characters(split_lines: pd.DataFrame, charset: Charset) -> list[dict[str, Any]]:
    """Characters of these lines' normalised text that the charset lacks: counts, lines and example ids
    (:func:`htr_pipeline.data.report.missing_characters`), each shown by its code point."""
    records = data_set_missing_characters(
        split_lines["sample_id"], split_lines["normalised"], charset, examples=EXAMPLE_SAMPLES
    )
    return [{"character": r["character"], "shown": describe_character(r["character"]), **r} for r in records]


def train_symbol_counts(lines: pd.DataFrame, charset: Charset) -> dict[str, int]:
    """How often each charset symbol occurs in the normalised train transcriptions, in charset order."""
    counts = Counter(character for text in lines.loc[lines["split"] == TRAIN_SPLIT, "normalised"] for character in text)
    return {symbol: counts[symbol] for symbol in charset.symbols}


def non_nfc_summary(split_lines: pd.DataFrame) -> dict[str, Any]:
    """How many of these lines are stored in another form than NFC, with example ids and the spellings involved."""
    is_nfc = [unicodedata.is_normalized(NORMALIZATION_FORM, text) for text in split_lines["raw"]]
    not_nfc = split_lines[~np.asarray(is_nfc, dtype=bool)]
    spellings = Counter(
        cluster
        for text in not_nfc["raw"]
        for cluster in clusters(text)
        if not unicodedata.is_normalized(NORMALIZATION_FORM, cluster)
    )
    return {
        "lines": len(not_nfc),
        "of_lines": len(split_lines),
        "examples": not_nfc["sample_id"].head(EXAMPLE_SAMPLES).tolist(),
        "spellings": [
            {"spelling": describe_spelling(cluster), "nfc": describe_spelling(_nfc(cluster)), "count": count}
            for cluster, count in spellings.most_common()
        ],
    }


def clusters(text: str) -> list[str]:
    """The text cut before every character that is not a combining mark: each piece a base and its marks."""
    pieces: list[str] = []
    for character in text:
        if pieces and unicodedata.combining(character):
            pieces[-1] += character
        else:
            pieces.append(character)
    return pieces


@dataclass
class _Spelling:
    lines: int = 0
    splits: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)


def find_spelling_collisions(lines: pd.DataFrame, charset: Charset) -> list[dict[str, Any]]:
    """Characters the stored transcriptions spell in two or more ways (same NFC form, other code points)."""
    # Only characters with a non-NFC spelling can collide; collecting them first keeps the full pass cheap.
    varied = {
        _nfc(cluster)
        for text in lines["raw"]
        if not unicodedata.is_normalized(NORMALIZATION_FORM, text)
        for cluster in clusters(text)
        if _nfc(cluster) != cluster
    }
    if not varied:
        return []
    spellings: dict[str, dict[str, _Spelling]] = {}
    for sample_id, split, text in zip(lines["sample_id"], lines["split"], lines["raw"], strict=True):
        for cluster in dict.fromkeys(clusters(text)):
            if _nfc(cluster) not in varied:
                continue
            seen = spellings.setdefault(_nfc(cluster), {}).setdefault(cluster, _Spelling())
            seen.lines += 1
            seen.splits.add(split)
            if len(seen.examples) < EXAMPLE_SAMPLES:
                seen.examples.append(sample_id)
    symbols = set(charset.symbols)
    return [
        _collision_record(character, by_spelling, symbols)
        for character, by_spelling in sorted(spellings.items())
        if len(by_spelling) > 1
    ]


def _collision_record(character: str, by_spelling: dict[str, _Spelling], symbols: set[str]) -> dict[str, Any]:
    records = [
        {
            "code_points": " ".join(f"U+{ord(part):04X}" for part in spelling),
            "shown": describe_spelling(spelling),
            "lines": seen.lines,
            "splits": split_order(seen.splits),
            "examples": seen.examples,
            "in_charset": all(part in symbols for part in spelling),
        }
        for spelling, seen in sorted(by_spelling.items(), key=lambda item: -item[1].lines)
    ]
    return {
        "character": describe_spelling(character),
        "spellings": records,
        "two_label_sequences": sum(record["in_charset"] for record in records) > 1,
    }


def find_combining_symbols(charset: Charset) -> list[dict[str, Any]]:
    """Combining marks among the symbols, each with the precomposed symbols it could also spell with a base."""
    symbols = set(charset.symbols)
    records = []
    for mark in (symbol for symbol in charset.symbols if unicodedata.combining(symbol)):
        equivalents = []
        for symbol in charset.symbols:
            decomposed = unicodedata.normalize("NFD", symbol)
            base = _nfc(decomposed[:-1])
            if len(decomposed) > 1 and decomposed[-1] == mark and base in symbols:
                equivalents.append(f"{describe_character(symbol)} = {describe_spelling(base + mark)}")
        records.append({"symbol": mark, "shown": describe_character(mark), "composes_into": equivalents})
    return records


def _nfc(text: str) -> str:
    return unicodedata.normalize(NORMALIZATION_FORM, text)


# ------------------------------------------------------------------------------------------------ findings


def _missing_findings(
    missing_by_split: dict[str, list[dict[str, Any]]], lines: pd.DataFrame, charset: Charset
) -> list[Finding]:
    findings = []
    for split, missing in missing_by_split.items():
        if not missing:
            continue
        named = _named_with_counts(missing, "shown", "count", extra_key="lines", extra_unit="lines")
        if split == TRAIN_SPLIT:
            findings.append(
                Finding(
                    "problem",
                    f"train: {len(missing)} character(s) of the transcriptions are missing from the "
                    f"{len(charset.symbols)}-symbol charset: {named}; these labels cannot be encoded. Rebuild the "
                    "charset from these train transcriptions (re-run data_ingestion) or correct the texts.",
                )
            )
            continue
        occurrences = sum(record["count"] for record in missing)
        characters = int(lines.loc[lines["split"] == split, "normalised"].str.len().sum())
        findings.append(
            Finding(
                "warning",
                f"{split}: {len(missing)} character(s) the charset lacks: {named} ({occurrences} of {characters} "
                f"characters); the recognizer can never output them, so {split} CER cannot fall below "
                f"{occurrences / characters:.2%}. Add train lines that contain them, or map them to charset "
                "symbols in the transcriptions.",
            )
        )
    return findings


def _rare_findings(rare_symbols: list[dict[str, Any]], rare_count: int, charset_size: int) -> list[Finding]:
    if not rare_symbols:
        return []
    never = sum(record["train_count"] == 0 for record in rare_symbols)
    named = _named_with_counts(rare_symbols, "shown", "train_count")
    return [
        Finding(
            "warning",
            f"{len(rare_symbols)} of {charset_size} charset symbols occur fewer than {rare_count} times in the "
            f"train transcriptions ({never} never): {named}; the recognizer sees too few examples to learn them. "
            "Add train lines that contain them, or expect them to be misread.",
        )
    ]


def _spelling_problem_findings(collisions: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for collision in (record for record in collisions if record["two_label_sequences"]):
        spellings = "; ".join(
            f"{spelling['shown']} in {spelling['lines']} line(s), e.g. {', '.join(spelling['examples'])}"
            for spelling in collision["spellings"]
        )
        findings.append(
            Finding(
                "problem",
                f"{collision['character']} is spelled in {len(collision['spellings'])} ways in the transcriptions "
                f"({spellings}) and the charset holds the code points of more than one, so one character has two "
                "label sequences. Store the transcriptions in NFC and rebuild the charset (re-run data_ingestion).",
            )
        )
    return findings


def _non_nfc_findings(non_nfc_lines: dict[str, dict[str, Any]], collisions: list[dict[str, Any]]) -> list[Finding]:
    affected = {split: summary for split, summary in non_nfc_lines.items() if summary["lines"]}
    if not affected:
        return []
    per_split = ", ".join(f"{split} {summary['lines']} of {summary['of_lines']}" for split, summary in affected.items())
    first = next(iter(affected.values()))
    example = first["examples"][0]
    if first["spellings"]:
        example += f" has {first['spellings'][0]['spelling']} for {first['spellings'][0]['nfc']}"
    silent = [record["character"] for record in collisions if not record["two_label_sequences"]]
    spelled_twice = f"; spelled both ways across lines: {', '.join(silent)}" if silent else ""
    return [
        Finding(
            "warning",
            f"Transcriptions not in {NORMALIZATION_FORM}: {per_split} lines (e.g. {example}){spelled_twice}. "
            f"normalise_text composes them before encoding, so their labels are consistent, but the stored text "
            f"differs from what is encoded: store the transcriptions in {NORMALIZATION_FORM} where they are made.",
        )
    ]


def _combining_symbol_findings(combining_symbols: list[dict[str, Any]]) -> list[Finding]:
    if not combining_symbols:
        return []
    named = ", ".join(record["shown"] for record in combining_symbols)
    equivalents = [equivalent for record in combining_symbols for equivalent in record["composes_into"]]
    also = f"; with base symbols they also spell {', '.join(equivalents)}" if equivalents else ""
    return [
        Finding(
            "warning",
            f"The charset holds combining mark(s) as symbols: {named}{also}. That is right for marks on bases "
            "without a precomposed form (e.g. medieval q̃); otherwise the charset was built from decomposed (NFD) "
            "text: rebuild it from normalised transcriptions (re-run data_ingestion).",
        )
    ]


def _all_fine_finding(
    lines: pd.DataFrame, splits: Sequence[str], charset: Charset, symbol_counts: dict[str, int], rare_count: int
) -> Finding:
    per_split = ", ".join(f"{split} {int((lines['split'] == split).sum())}" for split in splits)
    rarest = (
        f" (rarest: {describe_character(min(symbol_counts, key=symbol_counts.__getitem__))} "
        f"×{min(symbol_counts.values())})"
        if symbol_counts
        else ""
    )
    return Finding(
        "ok",
        f"All {len(lines)} transcribed lines ({per_split}) are covered by the {len(charset.symbols)}-symbol charset, "
        f"every symbol occurs at least {rare_count} times in train{rarest}, and every text is "
        f"{NORMALIZATION_FORM} with one spelling per character.",
    )


def _named_with_counts(
    records: Sequence[dict[str, Any]],
    name_key: str,
    count_key: str,
    extra_key: str | None = None,
    extra_unit: str = "",
) -> str:
    """``'é' (U+00E9) ×3 in 2 lines, ...`` for the first records, and how many more there are."""
    parts = []
    for record in records[:CHARACTERS_IN_MESSAGE]:
        extra = f" in {record[extra_key]} {extra_unit}" if extra_key else ""
        parts.append(f"{record[name_key]} ×{record[count_key]}{extra}")
    if len(records) > CHARACTERS_IN_MESSAGE:
        parts.append(f"and {len(records) - CHARACTERS_IN_MESSAGE} more")
    return ", ".join(parts)


def _markdown_sections(
    missing_by_split: dict[str, list[dict[str, Any]]],
    rare_symbols: list[dict[str, Any]],
    non_nfc_lines: dict[str, dict[str, Any]],
    collisions: list[dict[str, Any]],
) -> list[str]:
    missing_rows = [
        {**record, "split": split, "examples": ", ".join(record["examples"])}
        for split, records in missing_by_split.items()
        for record in records
    ]
    non_nfc_rows = [
        {"split": split, **summary, "examples": ", ".join(summary["examples"])}
        for split, summary in non_nfc_lines.items()
    ]
    spelling_rows = [
        {"character": collision["character"], **spelling, "examples": ", ".join(spelling["examples"])}
        for collision in collisions
        for spelling in collision["spellings"]
    ]
    return [
        "## Characters missing from the charset\n\n"
        + markdown_table(missing_rows, ["split", "shown", "count", "lines", "examples"], MARKDOWN_ROW_LIMIT),
        "## Rare symbols in train\n\n" + markdown_table(rare_symbols, ["shown", "train_count"], MARKDOWN_ROW_LIMIT),
        f"## Lines not in {NORMALIZATION_FORM}\n\n"
        + markdown_table(non_nfc_rows, ["split", "lines", "of_lines", "examples"]),
        "## Characters spelled more than one way\n\n"
        + markdown_table(spelling_rows, ["character", "shown", "lines", "in_charset", "examples"], MARKDOWN_ROW_LIMIT),
    ]


# ----------------------------------------------------------------------------------------------------- plot


def plot_charset_coverage(manifest: pd.DataFrame, charset: Charset, rare_count: int) -> Figure:
    """Train frequency of every symbol (log scale, rare ones marked), then each split's missing characters."""
    lines = lines_with_text(manifest)
    symbol_counts = train_symbol_counts(lines, charset)
    by_frequency = sorted(charset.symbols, key=lambda symbol: (-symbol_counts[symbol], symbol))
    missing = [
        (split, record)
        for split in split_order(lines["split"])
        for record in missing_characters(lines[lines["split"] == split], charset)
    ]
    bars = len(by_frequency) + len(missing)
    figure = Figure(figsize=(min(max(8.0, 0.16 * bars), 40.0), 4.5), layout="constrained")
    axes = figure.subplots()

    symbol_positions = np.arange(len(by_frequency))
    symbol_colours = ["tab:orange" if symbol_counts[symbol] < rare_count else "tab:blue" for symbol in by_frequency]
    axes.bar(symbol_positions, [symbol_counts[symbol] for symbol in by_frequency], color=symbol_colours)
    # The missing characters follow after a one-bar gap, each bar its count in the split that lacks it.
    missing_positions = len(by_frequency) + 1 + np.arange(len(missing))
    axes.bar(
        missing_positions,
        [record["count"] for _, record in missing],
        color=[MISSING_COLOURS.get(split, "tab:gray") for split, _ in missing],
    )
    axes.set_xticks(
        np.concatenate([symbol_positions, missing_positions]),
        [_tick_label(symbol) for symbol in by_frequency] + [_tick_label(record["character"]) for _, record in missing],
        fontsize=7,
    )
    axes.set_yscale("log", nonpositive="clip")
    axes.set_ylim(bottom=0.5)  # a symbol train never shows keeps its tick, without a bar
    axes.axhline(rare_count, color="tab:orange", linestyle="--", linewidth=1)
    legend = [Patch(color="tab:blue", label="train count"), Patch(color="tab:orange", label=f"rare (< {rare_count})")]
    legend += [
        Patch(color=MISSING_COLOURS.get(split, "tab:gray"), label=f"missing from charset, count in {split}")
        for split in dict.fromkeys(split for split, _ in missing)
    ]
    axes.legend(handles=legend, fontsize=8)
    axes.set(title=f"Charset coverage: {len(charset.symbols)} symbols", ylabel="occurrences (log)")
    return figure


def _tick_label(character: str) -> str:
    """The character itself; a space as ``␣``, a combining mark on a dotted circle, other invisibles by code point."""
    if character == " ":
        return "␣"
    if unicodedata.combining(character):
        return "◌" + character
    return f"U+{ord(character):04X}" if unicodedata.category(character)[0] in "MZC" else character


def audit_charset_coverage(manifest: pd.DataFrame, charset: Charset, diagnostics: DiagnosticsConfig) -> AuditReport:
    """Coverage of every split's text by the charset ingestion built from the train split."""
    report = charset_coverage_report(manifest, charset, diagnostics.rare_symbol_count)
    return report.with_figure(plot_charset_coverage(manifest, charset, diagnostics.rare_symbol_count))
