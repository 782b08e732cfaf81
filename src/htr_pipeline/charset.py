"""The symbol table: the one owner of text normalisation, encoding, decoding and the CTC blank index.

Every part of the project that turns text into label indices or indices back into text goes through a
:class:`Charset`; the blank index is defined here and nowhere else, so training and evaluation cannot
disagree about it (the previous system used blank 0 in training and blank last in evaluation).
"""

from __future__ import annotations

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


INVISIBLE_CHARACTERS = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
"""Format characters that draw no glyph: soft hyphen, zero-width space, zero-width non-joiner and joiner, word
joiner, byte-order mark. No recognizer can see them on a line, so :func:`normalise_text` removes them (and
:func:`invisible_characters` counts them for the data set report); a charset never holds one."""

_WITHOUT_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE_CHARACTERS))


def normalise_text(text: str) -> str:
    """Unicode NFC, :data:`INVISIBLE_CHARACTERS` removed, runs of white space (tab and newline included) folded
    to one space, no leading or trailing space. Control characters are kept: :func:`control_characters` finds
    them, and a text with one is rejected where it enters."""
    return " ".join(unicodedata.normalize(NORMALIZATION_FORM, text.translate(_WITHOUT_INVISIBLE)).split())


def invisible_characters(text: str) -> dict[str, int]:
    """``{"U+00AD": count}`` of the :data:`INVISIBLE_CHARACTERS` that :func:`normalise_text` removes from ``text``."""
    counts = Counter(f"U+{ord(symbol):04X}" for symbol in text if symbol in INVISIBLE_CHARACTERS)
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
            if len(symbol) == 1 and (unicodedata.category(symbol) == "Cc" or symbol in INVISIBLE_CHARACTERS):
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
