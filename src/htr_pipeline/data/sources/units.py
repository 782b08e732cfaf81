"""The reader interface: a reader lists the units of its source, and each unit reads itself.

A unit is what a source can read on its own: a line, a pair, a page, a row or a file. Listing is cheap (file
names, label files, a plan) and its errors concern the whole source (a missing folder, a label file that is not
UTF-8); reading a unit opens its files and gives its sample candidates and rejects. Units are read one at a time
by the one loop that drives readers (:func:`htr_pipeline.data.sources.reading.read_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from htr_pipeline.data.sources.samples import Reject, SampleCandidate

Outcome = SampleCandidate | Reject


@dataclass(frozen=True)
class SourceContext:
    """What a reader is told besides its settings."""

    key: str
    """Where the source's settings are, for messages: ``data.sources[0]``."""
    seed: int
    """``data.seed``."""


@dataclass(frozen=True)
class SourceUnit:
    """One unit of a source: what it is, and how to read it."""

    path: str
    """The unit as a reject names it: a file, ``<file>:<line>`` or ``<file>#row=<n>``."""
    read: Callable[[], Sequence[Outcome]]

    @classmethod
    def settled(cls, path: str, outcomes: Sequence[Outcome]) -> SourceUnit:
        """A unit whose outcomes listing already found (rejects of a label file, an image without text)."""
        kept = tuple(outcomes)
        return cls(path, lambda: kept)


Reader = Callable[[Any, SourceContext], Iterator[SourceUnit]]
"""``read(settings, context)``: the units of one configured source, in a fixed order."""
