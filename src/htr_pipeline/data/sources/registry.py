"""Data source kinds by name, one line each.

A kind is one module of this package, holding its settings class (a :class:`htr_pipeline.config.SourceSettings`
whose ``kind`` is a ``Literal`` of the kind's name) and its reader (see :mod:`htr_pipeline.data.sources.units`),
plus its line in :data:`SOURCE_KINDS` below; no other code changes. The schema validates ``data.sources`` entries
with the settings classes listed here, so an unknown kind fails at validation, naming the known ones; a line
whose settings class breaks the rules fails when this module is imported.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from htr_pipeline.config import SourceSettings
from htr_pipeline.data.sources.line_folder import LineFolderSource, read_line_folder
from htr_pipeline.data.sources.paired_folder import PairedFolderSource, read_paired_folder
from htr_pipeline.data.sources.parquet_lines import ParquetLinesSource, read_parquet_lines
from htr_pipeline.data.sources.synthetic import SyntheticSource, read_synthetic
from htr_pipeline.data.sources.units import Reader
from htr_pipeline.data.sources.xml_pages import XmlPagesSource, read_xml_pages

UnitKind = Literal["line", "pair", "page", "file"]


@dataclass(frozen=True)
class SourceKind:
    settings: type[SourceSettings]
    read: Reader
    unit: UnitKind
    """What one unit of the reader is; the rejects of ``page`` sources are also counted per page."""

    @property
    def name(self) -> str:
        return self.settings.kind_name()


SOURCE_KINDS: dict[str, SourceKind] = {}


def register_source_kind(source_kind: SourceKind) -> None:
    """Add a kind; raise naming the rule its settings class breaks, or the kind already registered."""
    settings = source_kind.settings
    if not (isinstance(settings, type) and issubclass(settings, SourceSettings)):
        raise TypeError(f"source kind settings {settings!r} must subclass htr_pipeline.config.SourceSettings")
    kind = settings.model_fields["kind"].annotation
    if typing.get_origin(kind) is not Literal or len(typing.get_args(kind)) != 1:
        raise TypeError(f"{settings.__name__}.kind must be a Literal of the kind's one name, not {kind!r}")
    name = source_kind.name
    if settings.model_fields["name"].default != name:
        raise TypeError(f"{settings.__name__}.name must default to the kind, {name!r}")
    if name in SOURCE_KINDS:
        raise ValueError(
            f"source kind {name!r} is registered twice: {SOURCE_KINDS[name].settings.__name__}, {settings.__name__}"
        )
    if source_kind.unit not in typing.get_args(UnitKind):
        raise ValueError(f"source kind {name!r}: unit {source_kind.unit!r} is not one of {typing.get_args(UnitKind)}")
    SOURCE_KINDS[name] = source_kind


for _source_kind in (
    SourceKind(SyntheticSource, read_synthetic, unit="line"),
    SourceKind(LineFolderSource, read_line_folder, unit="line"),
    SourceKind(PairedFolderSource, read_paired_folder, unit="pair"),
    SourceKind(XmlPagesSource, read_xml_pages, unit="page"),
    SourceKind(ParquetLinesSource, read_parquet_lines, unit="file"),
):
    register_source_kind(_source_kind)


def source_kind(name: str) -> SourceKind:
    if name not in SOURCE_KINDS:
        raise KeyError(f"unknown source kind {name!r}; the known kinds are {', '.join(sorted(SOURCE_KINDS))}")
    return SOURCE_KINDS[name]


def source_settings_by_kind() -> dict[str, type[SourceSettings]]:
    """What the schema validates ``data.sources`` entries with."""
    return {name: source_kind.settings for name, source_kind in SOURCE_KINDS.items()}


def page_source_names(sources: Iterable[SourceSettings]) -> list[str]:
    """The configured sources whose unit is a page."""
    return [source.name for source in sources if source_kind(source.kind).unit == "page"]
