"""The symbol table: the one owner of text normalisation, encoding, decoding and the CTC blank index.

Every part of the project that turns text into label indices or indices back into text goes through a
:class:`Charset`; the blank index is defined here and nowhere else, so training and evaluation cannot
disagree about it (the previous system used blank 0 in training and blank last in evaluation).
"""

from __future__ import annotations

import functools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

NORMALIZATION_FORM = "NFC"
BLANK_INDEX = 0
"""CTC blank; symbol ``i`` of :attr:`Charset.symbols` has label index ``i + 1``."""

_FORMAT_VERSION = 1


class UnknownSymbolError(ValueError):
    """A text holds characters the charset does not have; they are named, never dropped."""

    def __init__(self, text: str, unknown: Sequence[str]):
        self.unknown = list(unknown)
        shown = ", ".join(f"{symbol!r} (U+{ord(symbol):04X})" for symbol in self.unknown)
        super().__init__(f"text {text!r} has characters missing from the charset: {shown}")


_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
"""Unicode's ``Default_Ignorable_Code_Point`` (DerivedCoreProperties.txt, Unicode 15): what a renderer draws
nothing for when it has no special support (Python's ``unicodedata`` does not expose the property)."""
PREPENDED_CONCATENATION_MARKS = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)
"""Format characters (category Cf) that do draw a glyph (the Arabic number sign and its kin): kept."""
LINE_BREAKS = frozenset("\r\n\x0b\x0c\x85\u2028\u2029")
"""Line-break characters: inside one line's text each folds to a space and is counted (a lone carriage return
once cut labels in two)."""


@functools.lru_cache(maxsize=4096)
def draws_nothing(symbol: str) -> bool:
    """A format or default-ignorable character: bidi marks and isolates (U+200E, U+202E, U+2066 ...), zero-width
    space and joiners, soft hyphen, word joiner, byte-order mark, variation selectors, tags. :func:`normalise_text`
    removes them, :func:`text_changes` counts them, and a :class:`Charset` never holds one."""
    if symbol in PREPENDED_CONCATENATION_MARKS:
        return False
    code = ord(symbol)
    return unicodedata.category(symbol) == "Cf" or any(low <= code <= high for low, high in _DEFAULT_IGNORABLE_RANGES)


def normalise_text(text: str) -> str:
    """The text rule, the one place it is applied: Unicode NFC; every character that :func:`draws_nothing` removed;
    runs of white space (tab, line breaks) folded to one space; no leading or trailing space. Control characters
    are kept: :func:`control_characters` finds them, and a text with one is rejected where it enters.
    :func:`text_changes` counts what this changes beyond NFC and spacing."""
    kept = "".join(symbol for symbol in text if not draws_nothing(symbol))
    return " ".join(unicodedata.normalize(NORMALIZATION_FORM, kept).split())


def text_changes(text: str) -> dict[str, int]:
    """``{"U+200E": count}``: the characters :func:`normalise_text` removes from ``text`` (:func:`draws_nothing`)
    and the line breaks it folds into a space inside the text (leading and trailing ones are only trimmed)."""
    inner = text.strip()
    counts = Counter(f"U+{ord(symbol):04X}" for symbol in text if draws_nothing(symbol))
    counts.update(f"U+{ord(symbol):04X}" for symbol in inner if symbol in LINE_BREAKS)
    return dict(sorted(counts.items()))


def control_characters(text: str) -> list[str]:
    """The C0 and C1 control characters of ``text`` that white-space folding does not turn into a space (NUL,
    BEL, ESC, ...), in order of first appearance: a transcription holding one is corrupt, not handwriting."""
    return list(dict.fromkeys(c for c in text if unicodedata.category(c) == "Cc" and not c.isspace()))


def describe_code_points(symbols: Iterable[str]) -> str:
    return ", ".join(f"U+{ord(symbol):04X}" for symbol in symbols)


@dataclass(frozen=True)
class Charset:
    """Ordered symbols of the training transcriptions, plus the CTC blank at :data:`BLANK_INDEX`."""

    symbols: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("charset symbols must be unique")
        for symbol in self.symbols:
            if len(symbol) == 1 and (unicodedata.category(symbol) == "Cc" or draws_nothing(symbol)):
                raise ValueError(
                    f"charset symbol {describe_code_points(symbol)} is a control or invisible character; texts "
                    "go through normalise_text, and those with control characters are rejected, before a charset"
                )
            if len(symbol) != 1 or (normalise_text(symbol) != symbol and symbol != " "):
                raise ValueError(f"charset symbol {symbol!r} is not a single {NORMALIZATION_FORM} character")
        object.__setattr__(self, "_index_of", {symbol: i + 1 for i, symbol in enumerate(self.symbols)})

    # --------------------------------------------------------------------------------------- building

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Charset:
        """Symbols of the normalised texts, in code-point order, with their counts."""
        counts = Counter(symbol for text in texts for symbol in normalise_text(text))
        return cls(symbols=tuple(sorted(counts)), counts=dict(sorted(counts.items())))

    # ------------------------------------------------------------------------------------------ sizes

    @property
    def blank_index(self) -> int:
        return BLANK_INDEX

    @property
    def num_classes(self) -> int:
        """Output size of a CTC recognizer: every symbol plus the blank."""
        return len(self.symbols) + 1

    # -------------------------------------------------------------------------------- encode / decode

    def missing_symbols(self, text: str) -> list[str]:
        """Characters of the normalised text that the charset lacks, in order of first appearance."""
        return list(dict.fromkeys(s for s in normalise_text(text) if s not in self._index_of))  # type: ignore[attr-defined]

    def encode(self, text: str) -> list[int]:
        """Label indices (never the blank) of the normalised text; unknown characters raise."""
        unknown = self.missing_symbols(text)
        if unknown:
            raise UnknownSymbolError(text, unknown)
        index_of = self._index_of  # type: ignore[attr-defined]
        return [index_of[symbol] for symbol in normalise_text(text)]

    def decode_greedy(self, best_path: Iterable[int]) -> str:
        """Text of a CTC best path (argmax per time step): merge repeats, then drop blanks."""
        symbols = []
        previous = None
        for index in (int(value) for value in best_path):
            if index != previous and index != BLANK_INDEX:
                symbols.append(self._symbol_of(index))
            previous = index
        return "".join(symbols)

    @staticmethod
    def greedy_labels(best_paths: torch.Tensor, time_steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The label sequences of CTC best paths, computed on their device (no host synchronisation): merge
        repeats, drop blanks, left-align. Labels are padded with the blank to the paths' length."""
        # best_paths: (batch, time) int64 argmax per time step; time_steps: (batch,) each path's own length
        batch, time = best_paths.shape
        positions = torch.arange(time, device=best_paths.device)
        previous = torch.cat([best_paths.new_full((batch, 1), BLANK_INDEX), best_paths[:, :-1]], dim=1)
        kept = (positions[None, :] < time_steps[:, None]) & (best_paths != previous) & (best_paths != BLANK_INDEX)
        # Each kept symbol goes to its rank among the kept ones; the others to a spare column, then dropped.
        target_column = torch.where(kept, kept.cumsum(dim=1) - 1, time)
        labels = best_paths.new_full((batch, time + 1), BLANK_INDEX)
        labels.scatter_(1, target_column, torch.where(kept, best_paths, BLANK_INDEX))
        return labels[:, :time], kept.sum(dim=1)

    def _symbol_of(self, label: int) -> str:
        if not 1 <= label <= len(self.symbols):
            raise ValueError(f"label {label} is outside the charset's 1..{len(self.symbols)} (blank is {BLANK_INDEX})")
        return self.symbols[label - 1]

    # ---------------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": _FORMAT_VERSION,
            "normalization": NORMALIZATION_FORM,
            "blank_index": BLANK_INDEX,
            "num_classes": self.num_classes,
            "symbols": list(self.symbols),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Charset:
        """Rebuild a stored charset; a different blank index or normalisation form is an error."""
        if stored.get("blank_index") != BLANK_INDEX or stored.get("normalization") != NORMALIZATION_FORM:
            raise ValueError(
                f"charset was stored with blank_index={stored.get('blank_index')!r}, "
                f"normalization={stored.get('normalization')!r}; this project uses "
                f"blank_index={BLANK_INDEX}, normalization={NORMALIZATION_FORM!r}. Re-run data_ingestion."
            )
        return cls(symbols=tuple(stored["symbols"]), counts=dict(stored.get("counts", {})))
