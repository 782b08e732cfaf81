"""The one loop that drives readers: every configured source, one unit at a time, into candidates and rejects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from htr_pipeline.config import DataConfig, SourceSettings
from htr_pipeline.data.sources.common import WHOLE_SOURCE_ERRORS
from htr_pipeline.data.sources.registry import source_kind
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate, unexpected_error
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit


@dataclass
class SourceReading:
    candidates: list[SampleCandidate]
    rejects: list[Reject]


def read_sources(data: DataConfig) -> SourceReading:
    """Candidates and rejects of every configured source, then the label-length screen."""
    reading = SourceReading(candidates=[], rejects=[])
    for position, source in enumerate(data.sources):
        part = read_source(source, SourceContext(key=f"data.sources[{position}]", seed=data.seed))
        reading.candidates.extend(part.candidates)
        reading.rejects.extend(part.rejects)
    return screen_label_lengths(reading, data.max_label_length)


def read_source(source: SourceSettings, context: SourceContext) -> SourceReading:
    """The units of one source, read one at a time in the reader's order; then one sample per id.

    Units are read here and nowhere else: this loop is the boundary of every reader. A unit that fails, whatever
    the exception, becomes one ``unexpected_error`` reject naming the unit and the error, and the run goes on.
    Errors of the reader itself (while listing) and :data:`WHOLE_SOURCE_ERRORS` concern the whole source and stop
    the run."""
    reading = SourceReading(candidates=[], rejects=[])
    for unit in source_kind(source.kind).read(source, context):
        for outcome in read_unit(unit, source.name):
            (reading.rejects if isinstance(outcome, Reject) else reading.candidates).append(outcome)
    return drop_duplicate_ids(reading)


def read_unit(unit: SourceUnit, source_name: str) -> Sequence[Outcome]:
    """The unit's outcomes; a failure of the unit alone is its one reject."""
    try:
        return unit.read()
    except WHOLE_SOURCE_ERRORS:
        raise
    except Exception as error:
        return [unexpected_error(source_name, None, unit.path, error)]


def drop_duplicate_ids(reading: SourceReading) -> SourceReading:
    """Two inputs that map to one sample id (``a.png`` and ``a.jpg``): the first is kept, the rest rejected."""
    seen: set[str] = set()
    kept, rejects = [], list(reading.rejects)
    for candidate in reading.candidates:
        if candidate.sample_id in seen:
            rejects.append(
                Reject(
                    candidate.source,
                    candidate.sample_id,
                    candidate.path,
                    RejectReason.DUPLICATE_ID,
                    "another file already gives this sample id",
                )
            )
            continue
        seen.add(candidate.sample_id)
        kept.append(candidate)
    return SourceReading(kept, rejects)


def screen_label_lengths(reading: SourceReading, max_label_length: int) -> SourceReading:
    kept, rejects = [], list(reading.rejects)
    for candidate in reading.candidates:
        text = candidate.transcription
        if text is not None and len(text) > max_label_length:
            rejects.append(
                Reject(
                    candidate.source,
                    candidate.sample_id,
                    candidate.path,
                    RejectReason.LABEL_TOO_LONG,
                    f"{len(text)} symbols > data.max_label_length={max_label_length}",
                )
            )
        else:
            kept.append(candidate)
    return SourceReading(kept, rejects)
