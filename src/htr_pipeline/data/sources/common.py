"""What several readers share: the source folder check, label and split files (``labels.tsv``, ``splits.tsv``),
the checks of a transcription, paths that leave the source, sample ids and groups."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from htr_pipeline.charset import control_characters, describe_code_points, normalise_text, text_changes
from htr_pipeline.config import SPLIT_NAMES, SourceSettings
from htr_pipeline.data.images import IMAGE_SUFFIXES
from htr_pipeline.data.sources.pixels import Pixels
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate
from htr_pipeline.data.sources.units import SourceContext


class WholeSourceError(Exception):
    """An error about a whole source (its folder, its label file, its settings), not one of its units: it stops the
    run, even when a unit's reading finds it."""


WHOLE_SOURCE_ERRORS: tuple[type[Exception], ...] = (WholeSourceError,)


class SourceNotFoundError(WholeSourceError, FileNotFoundError):
    """A configured source path does not exist."""


class SourceEncodingError(WholeSourceError, ValueError):
    """A label file (``labels.tsv``, ``splits.tsv``) of a source is not UTF-8: none of its lines can be read."""


def require_folder(path: Path, context: SourceContext, source_name: str) -> Path:
    """``path`` when it is a folder; else stop the run naming the setting (a missing folder is the whole source)."""
    if not Path(path).is_dir():
        raise SourceNotFoundError(
            f"{context.key}.path: folder '{path}' (resolved: '{Path(path).resolve()}') does not "
            f"exist. Fix the path in conf/<env>/parameters.yml or remove the '{source_name}' source."
        )
    return Path(path)


def line_sample(
    source: SourceSettings,
    sample_id: str,
    group: str | None,
    split: str | None,
    text: str,
    origin: dict[str, Any] | None,
    pixels: Pixels,
    source_changes: dict[str, int] | None = None,
) -> SampleCandidate:
    """A real text line (``text`` as the source gives it) whose image comes from ``pixels``; ``source_changes``:
    what the source's own reading already changed (XML entities resolved), counted with the text rule's."""
    return SampleCandidate(
        sample_id=sample_id,
        source=source.name,
        source_kind=source.kind,
        image_type="line",
        group=group,
        split=split,
        transcription=normalise_text(text),
        text_changes=counted_changes(text, source_changes),
        origin=json.dumps(origin, ensure_ascii=False) if origin is not None else None,
        clean_pixels=pixels,
    )


# --------------------------------------------------------------------------------------- label and split files


@dataclass
class TsvRows:
    path: Path
    values: dict[str, str]
    """``key -> value`` in file order, the first row of a repeated key."""
    line_numbers: dict[str, int]
    rejects: list[Reject]

    def where(self, key: str) -> str:
        return f"{self.path}:{self.line_numbers[key]}"


@dataclass
class SplitsReading:
    split_of_file: dict[str, str] | None
    """As written in ``splits.tsv`` (checked when a sample asks); ``None`` when there is no such file."""
    rejects: list[Reject]
    path: Path
    rows: TsvRows | None = None


def read_splits(path: Path, source_name: str) -> SplitsReading:
    """``filename<TAB>train|valid|test``; absent file: the seed assigns splits."""
    if not path.is_file():
        return SplitsReading(None, [], path)
    rows = read_tsv(path, source_name)
    return SplitsReading(rows.values, rows.rejects, path, rows)


def keys_without_files(
    rows: TsvRows | None, folder: Path, root: Path, source: str, accounted: set[str | None]
) -> list[Reject]:
    """A reject for each key of a ``.tsv`` that names a file outside the source, or no file at all (unless its
    sample id is ``accounted`` for by a unit or another reject), so a listed line never vanishes without a word."""
    if rows is None:
        return []
    rejects = []
    for key in rows.values:
        id_of_key = sample_id_of(source, key_stem(key))
        if id_of_key in accounted:
            continue
        path = folder / key
        escaping = outside_source(source, id_of_key, path, root, f"{rows.where(key)}: '{key}'")
        if escaping:
            rejects.append(escaping)
        elif not path.is_file():
            rejects.append(
                Reject(
                    source,
                    id_of_key,
                    str(path),
                    RejectReason.MISSING_IMAGE,
                    f"{rows.where(key)}: lists '{key}' but the file does not exist",
                )
            )
    return rejects


def split_of(
    file_name: str, splits: SplitsReading, sample_id: str, image_path: str, source: str
) -> str | Reject | None:
    """The file's split from ``splits.tsv``, ``None`` without one, or a reject (unlisted or unknown split)."""
    if splits.split_of_file is None:
        return None
    if file_name not in splits.split_of_file:
        return Reject(source, sample_id, image_path, RejectReason.NOT_IN_SPLITS, f"not listed in {splits.path}")
    split = splits.split_of_file[file_name].strip()
    if split not in SPLIT_NAMES:
        return Reject(
            source,
            sample_id,
            image_path,
            RejectReason.UNKNOWN_SPLIT,
            f"{splits.path}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}",
        )
    return split


def read_tsv(path: Path, source_name: str) -> TsvRows:
    """``key<TAB>value`` rows; malformed rows and repeated keys become rejects naming the line."""
    rows: dict[str, str] = {}
    line_numbers: dict[str, int] = {}
    rejects = []
    try:
        text = read_utf8(path)
    except UnicodeDecodeError as error:
        raise SourceEncodingError(
            f"source '{source_name}': {not_utf8(path, error)}. Every line of it is unreadable: save it as UTF-8, "
            f"for example `iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`, then rename it."
        ) from None
    for line_number, line in enumerate(tsv_lines(text), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            rejects.append(
                Reject(
                    source_name,
                    None,
                    str(path),
                    RejectReason.MALFORMED_LABEL_LINE,
                    f"{path}:{line_number}: expected 'filename<TAB>value', got {line[:80]!r}",
                )
            )
            continue
        key, value = line.split("\t", 1)
        if key in rows:
            rejects.append(
                Reject(
                    source_name,
                    sample_id_of(source_name, key_stem(key)),
                    str(path),
                    RejectReason.DUPLICATE_ID,
                    f"{path}:{line_number}: '{key}' is listed again; the first row is kept",
                )
            )
            continue
        rows[key] = value
        line_numbers[key] = line_number
    return TsvRows(path, rows, line_numbers, rejects)


def tsv_lines(text: str) -> list[str]:
    """The rows of a label file: lines end at LF or CRLF only, so a carriage return inside a text stays in it (the
    text rule folds it and counts it); a file of classic Mac CR endings only is read by CR."""
    separator = "\n" if "\n" in text or "\r" not in text else "\r"
    return [line.removesuffix("\r") for line in text.split(separator)]


def read_utf8(path: Path) -> str:
    """A text file of a source: UTF-8, with or without a byte-order mark (``UnicodeDecodeError`` otherwise)."""
    return path.read_bytes().decode("utf-8-sig")


def not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, with a hint when it is plainly UTF-16."""
    data = error.object
    line = data.count(b"\n", 0, error.start) + 1
    utf16 = " (it starts with a UTF-16 byte-order mark)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return (
        f"{path} is not UTF-8 text{utf16}: byte 0x{data[error.start]:02x} at offset {error.start}, line {line}; "
        "the project reads UTF-8, with or without a byte-order mark"
    )


# ----------------------------------------------------------------------------------------------- checks


def outside_source(source: str, sample_id: str | None, path: Path, root: Path, named_by: str) -> Reject | None:
    """A reject when ``path``, once ``..`` and symbolic links are resolved, is not inside the source folder: a
    source never makes ingestion read (or, through an output name, write) anywhere else."""
    try:
        resolved, folder = path.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):
        return None  # a symlink loop or a name no file can have: file_reject turns the path down, unread
    if resolved.is_relative_to(folder):
        return None
    return Reject(
        source,
        sample_id,
        str(path),
        RejectReason.PATH_OUTSIDE_SOURCE,
        f"{named_by} resolves to {resolved}, outside the source folder {folder}; only files inside it are read",
    )


def file_reject(
    source: str, sample_id: str | None, path: Path, max_bytes: int | None = None, setting: str = ""
) -> Reject | None:
    """A reject unless ``path`` is a regular file (after symbolic links) that can be inspected and, with
    ``max_bytes``, is at most that size: a FIFO, a device, a folder or a symlink loop is never opened."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return Reject(source, sample_id, str(path), RejectReason.MISSING_IMAGE, f"{path} does not exist")
    except (OSError, ValueError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return Reject(source, sample_id, str(path), RejectReason.UNREADABLE_FILE, f"{path}: cannot be read ({why})")
    if not stat.S_ISREG(status.st_mode):
        return Reject(
            source,
            sample_id,
            str(path),
            RejectReason.NOT_A_REGULAR_FILE,
            f"{path} is a {_file_type(status.st_mode)}, not a regular file: only regular files are opened",
        )
    if max_bytes is not None and status.st_size > max_bytes:
        return Reject(
            source,
            sample_id,
            str(path),
            RejectReason.FILE_TOO_LARGE,
            f"{path}: {status.st_size:,} bytes > {setting}={max_bytes:,}; not read",
        )
    return None


def _file_type(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"))
    return next((name for test, name in kinds if test(mode)), "device" if stat.S_ISBLK(mode) else "special file")


def text_reject(source: str, sample_id: str, image_path: str, text: str | None, text_origin: str) -> Reject | None:
    if text is None:
        return Reject(source, sample_id, image_path, RejectReason.MISSING_TRANSCRIPTION, f"no text in {text_origin}")
    if not normalise_text(text):
        return Reject(
            source, sample_id, image_path, RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {text_origin}"
        )
    if controls := control_characters(text):
        return Reject(
            source,
            sample_id,
            image_path,
            RejectReason.CONTROL_CHARACTER,
            f"control character {describe_code_points(controls)} in the transcription in {text_origin}",
        )
    return None


def counted_changes(text: str, source_changes: dict[str, int] | None = None) -> str | None:
    """JSON of :func:`htr_pipeline.charset.text_changes` plus what the source's reading changed; ``None``: none."""
    changes = {**text_changes(text), **(source_changes or {})}
    return json.dumps(dict(sorted(changes.items())), ensure_ascii=False) if changes else None


# ------------------------------------------------------------------------------------------- names and groups


def image_files(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Every entry with an image suffix that is not a folder: a FIFO, a broken link or a symlink loop named
    ``x.png`` is listed too, and becomes a reject when its unit is read (:func:`file_reject`), never a silent gap."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return iter(sorted(path for path in paths if path.suffix.lower() in IMAGE_SUFFIXES and not _is_folder(path)))


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def key_stem(key: str) -> str:
    """A ``labels.tsv`` or ``splits.tsv`` key without its suffix (``lines/a.png`` -> ``lines/a``); a key no path
    can have (``.``, empty) stays as it is, to be rejected by name when its row is read."""
    try:
        return Path(key).with_suffix("").as_posix()
    except ValueError:
        return key


def sample_id_of(source_name: str, stem: str) -> str:
    return f"{source_name}:{stem}"


def group_of(file_name: str, pattern: str | None, source_name: str) -> str | None:
    if pattern is None:
        return None
    match = re.search(pattern, file_name)
    if match is None or "group" not in match.groupdict():
        return None
    return f"{source_name}:{match.group('group')}"


def reject_ids(rejects: Iterable[Reject]) -> set[str | None]:
    return {reject.sample_id for reject in rejects}
