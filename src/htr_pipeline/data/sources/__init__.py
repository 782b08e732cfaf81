"""Reading the configured data sources into sample candidates, and every unusable input into rejects.

Each kind of source is one module here, with its settings class and its reader, and one line in
:mod:`htr_pipeline.data.sources.registry`. A reader lists the units of its source (a line, a pair, a page, a
file), and :func:`read_sources` reads them one at a time. A candidate says where its pixels come from
(:mod:`htr_pipeline.data.sources.pixels`); images are checked, cut and normalised when samples are materialised
(:mod:`htr_pipeline.data.materialise`).
"""

from htr_pipeline.data.sources.common import SourceEncodingError, SourceNotFoundError
from htr_pipeline.data.sources.parquet_lines import MissingColumnError
from htr_pipeline.data.sources.reading import SourceReading, read_sources
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate

__all__ = [
    "MissingColumnError",
    "Reject",
    "RejectReason",
    "SampleCandidate",
    "SourceEncodingError",
    "SourceNotFoundError",
    "SourceReading",
    "read_sources",
]
