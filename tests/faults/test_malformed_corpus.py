"""A standing corpus of malformed inputs, made from real line images: each case's exact reject reason and
message, and that every input is either kept or rejected, as the data set report counts them."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.data.ingestion import charset_document
from htr_pipeline.data.report import summarise_dataset
from htr_pipeline.data.sources import RejectReason
from tests.conftest import SHARED_DATA, write_line_png
from tests.data.test_sources import _config, _ingest

REAL_LINES = SHARED_DATA / "testaments_poilus_fr" / "lines"

CORPUS_CONFIG = {"max_label_length": 40, "max_image_pixels": 1_000_000}


def _real_line(index: int, scratch: Path) -> np.ndarray:
    """A real handwritten line (a crop of the shared Testaments de Poilus set, halved), or, where that set is
    absent, a line drawn by the tests' PNG writer."""
    if REAL_LINES.is_dir():
        path = sorted(REAL_LINES.glob("*.png"))[index]
        image = Image.open(path).convert("L")
        return np.asarray(image.resize((max(32, image.width // 2), max(32, image.height // 2))))
    return np.asarray(Image.open(write_line_png(scratch / f"drawn_{index}.png", seed=index)))


GOOD = {
    "plain.png": "La guerre",
    "accents.png": "à Paris, œuvre",
    "rgba.png": "rgba",
    "sixteen_bit.png": "seize bits",
    "cmyk.jpg": "cmyk",
    "jpeg_named_png.png": "jpeg",
    "soft_hyphen.png": "mon\u00adtestament",
    "zero_width.png": "de\u200bmain\u2060",
    "nfd.png": "e\u0301te\u0301",
    "crlf.png": "ligne crlf",
}
"""Hostile but fair: kept (invisible characters removed, NFD composed)."""


def build_corpus(root: Path) -> Path:
    """``root/corpus``: a line folder with labels.tsv and splits.tsv; the victim of escapes lies beside it."""
    folder = root / "corpus"
    (folder / "lines").mkdir(parents=True)
    lines = [_real_line(index, root) for index in range(4)]
    outside = root / "outside.png"
    Image.fromarray(lines[0]).save(outside)

    def save(name: str, image: np.ndarray | Image.Image, **options) -> None:
        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(folder / "lines" / name, **options)

    for index, name in enumerate(GOOD):
        save(name, lines[index % len(lines)]) if name.endswith(".png") else None
    rgb = Image.fromarray(lines[1]).convert("RGB")
    save("rgba.png", Image.fromarray(lines[1]).convert("RGBA"))
    save("sixteen_bit.png", Image.fromarray(lines[2].astype(np.uint16) * 257))
    save("cmyk.jpg", rgb.convert("CMYK"))
    save("jpeg_named_png.png", rgb, format="JPEG")
    bad_images = {
        "random_bytes.png": os.urandom(2000),
        "empty_file.png": b"",
        "text_as_png.png": b"filename\ttranscription\n",
        # Half of a real PNG: always cut inside its image data, whatever size the rendered line compresses to.
        "truncated.png": (lambda png: png[: len(png) // 2])((folder / "lines" / "plain.png").read_bytes()),
    }
    for name, content in bad_images.items():
        (folder / "lines" / name).write_bytes(content)
    for name in ("tiny.png",):
        save(name, lines[0][:4, :5])
    save("too_large.png", np.full((600, 2000), 240, dtype=np.uint8))
    for name in ("empty.png", "blank.png", "invisible_only.png", "long.png", "dup.png", "bell.png", "nul.png"):
        save(name, lines[3])
    for name in ("escape.png", "delete.png", "next_line.png", "bad_split.png", "not_in_splits.png", "orphan.png"):
        save(name, lines[2])
    (folder / "lines" / "linked.png").symlink_to(outside)

    rows = [f"{name}\t{text}" for name, text in GOOD.items() if name != "crlf.png"]
    rows += [
        "random_bytes.png\trandom",
        "empty_file.png\tempty file",
        "text_as_png.png\ttext",
        "truncated.png\ttruncated",
        "tiny.png\ttiny",
        "too_large.png\ttoo large",
        "ghost.png\tno such file",
        "empty.png\t",
        "blank.png\t   ",
        "invisible_only.png\t\u200b\ufeff",
        "long.png\t" + "x" * 41,
        "dup.png\tfirst",
        "dup.png\tsecond",
        "no tab on this line",
        "../../outside.png\tclimbs out",
        f"{outside}\tabsolute",
        "linked.png\tlinked",
        "bell.png\tding\x07",
        "nul.png\ta\x00b",
        "escape.png\tesc\x1b[0m",
        "delete.png\tdel\x7f",
        "next_line.png\tnext\x85line",
        "bad_split.png\tbad split",
        "not_in_splits.png\tunlisted",
    ]
    labels = "\n".join(rows) + "\ncrlf.png\tligne crlf\r\n"
    (folder / "labels.tsv").write_bytes(labels.encode("utf-8"))
    save("crlf.png", lines[0])
    listed = [*GOOD, *bad_images, "tiny.png", "too_large.png", "ghost.png", "empty.png", "blank.png"]
    listed += ["invisible_only.png", "long.png", "dup.png", "linked.png", "bell.png", "nul.png", "escape.png"]
    listed += ["delete.png", "next_line.png", "splits_ghost.png", "orphan.png"]
    splits = "".join(f"{name}\t{'valid' if index % 5 == 0 else 'train'}\n" for index, name in enumerate(listed))
    (folder / "splits.tsv").write_text(splits + "bad_split.png\tval\n")
    return folder


def _expected_rejects(root: Path) -> dict[str, tuple[RejectReason, str]]:
    """Every malformed case: its sample id, reject reason and the exact message users read."""
    labels, splits, lines = root / "corpus" / "labels.tsv", root / "corpus" / "splits.tsv", root / "corpus" / "lines"
    outside = f"resolves to {root / 'outside.png'}, outside the source folder {root / 'corpus'}; only files inside it"

    def unidentified(name: str) -> str:
        return f"{lines / name}: cannot read image (cannot identify image file '{lines / name}')"

    def control(code: str) -> str:
        return f"control character U+{code} in the transcription in {labels}"

    return {
        "random_bytes": (RejectReason.UNREADABLE_IMAGE, unidentified("random_bytes.png")),
        "empty_file": (RejectReason.UNREADABLE_IMAGE, unidentified("empty_file.png")),
        "text_as_png": (RejectReason.UNREADABLE_IMAGE, unidentified("text_as_png.png")),
        "truncated": (
            RejectReason.UNREADABLE_IMAGE,
            f"{lines / 'truncated.png'}: cannot read image (image file is truncated)",
        ),
        "tiny": (
            RejectReason.IMAGE_TOO_SMALL,
            "5 x 4 px is below data.min_source_width_px=8 x data.min_source_height_px=8",
        ),
        "too_large": (
            RejectReason.IMAGE_TOO_LARGE,
            f"{lines / 'too_large.png'}: 2000 x 600 px = 1,200,000 pixels > data.max_image_pixels=1,000,000",
        ),
        "ghost": (RejectReason.MISSING_IMAGE, f"listed in {labels} but the file does not exist"),
        "splits_ghost": (
            RejectReason.MISSING_IMAGE,
            f"{splits}:29: lists 'splits_ghost.png' but the file does not exist",
        ),
        "empty": (RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {labels}"),
        "blank": (RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {labels}"),
        "invisible_only": (RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {labels}"),
        "long": (RejectReason.LABEL_TOO_LONG, "41 symbols > data.max_label_length=40"),
        "dup": (RejectReason.DUPLICATE_ID, f"{labels}:22: 'dup.png' is listed again; the first row is kept"),
        None: (
            RejectReason.MALFORMED_LABEL_LINE,
            f"{labels}:23: expected 'filename<TAB>value', got 'no tab on this line'",
        ),
        "../../outside": (RejectReason.PATH_OUTSIDE_SOURCE, f"{labels}:24: '../../outside.png' {outside} are read"),
        str(root / "outside"): (
            RejectReason.PATH_OUTSIDE_SOURCE,
            f"{labels}:25: '{root / 'outside.png'}' {outside} are read",
        ),
        "linked": (RejectReason.PATH_OUTSIDE_SOURCE, f"{labels}:26: 'linked.png' {outside} are read"),
        "bell": (RejectReason.CONTROL_CHARACTER, control("0007")),
        "nul": (RejectReason.CONTROL_CHARACTER, control("0000")),
        "escape": (RejectReason.CONTROL_CHARACTER, control("001B")),
        "delete": (RejectReason.CONTROL_CHARACTER, control("007F")),
        "bad_split": (RejectReason.UNKNOWN_SPLIT, f"{splits}: split 'val' is not one of train, valid, test"),
        "not_in_splits": (RejectReason.NOT_IN_SPLITS, f"not listed in {splits}"),
        "orphan": (RejectReason.MISSING_TRANSCRIPTION, f"no row for it in {labels}"),
    }


KEPT = {
    **{Path(name).stem: text for name, text in GOOD.items()},
    "soft_hyphen": "montestament",
    "zero_width": "demain",
    "nfd": "\u00e9t\u00e9",
    "dup": "first",
    "next_line": "next line",  # U+0085 NEXT LINE is a line break: whitespace, like a newline
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("malformed")
    build_corpus(root)
    config = _config({"kind": "line_folder", "name": "corpus", "path": str(root / "corpus")}, **CORPUS_CONFIG)
    manifest, rejects = _ingest(config)
    return root, manifest, rejects


def test_the_corpus_holds_at_least_25_malformed_cases(corpus):
    root, _, _ = corpus
    hostile_but_fair = set(KEPT) - {"plain", "accents", "dup"}
    assert len(_expected_rejects(root)) + len(hostile_but_fair) == 33


@pytest.mark.parametrize("case", sorted(_expected_rejects(Path("/")), key=str), ids=str)
def test_each_malformed_case_is_one_reject_with_its_exact_message(corpus, case: str | None):
    root, _, rejects = corpus
    expected = _expected_rejects(root)
    if case is not None and case.startswith("/"):  # the absolute path case, named here under the corpus root
        case = str(root / "outside")
    ids = [None if pd.isna(sample) else sample for sample in rejects["sample_id"]]
    found = [
        (reason, detail)
        for sample, reason, detail in zip(ids, rejects["reason"], rejects["detail"], strict=True)
        if sample == (f"corpus:{case}" if case is not None else None)
    ]
    assert found == [expected[case]]


def test_hostile_but_fair_lines_are_kept_as_their_normalised_text(corpus):
    _, manifest, _ = corpus
    kept = dict(zip(manifest["sample_id"].str.removeprefix("corpus:"), manifest["transcription"], strict=True))
    assert kept == KEPT


def test_every_input_is_kept_or_rejected_and_the_report_counts_both(corpus):
    root, manifest, rejects = corpus
    report = summarise_dataset(manifest, rejects, Charset.from_dict(charset_document(manifest)))
    inputs = len(KEPT) + len(_expected_rejects(root))  # 'dup' twice: its first row kept, the second rejected
    assert report["samples"] + report["rejects"] == inputs == 36
    assert report["rejects_per_reason"] == {
        reason.value: count for reason, count in sorted(Counter(r for r, _ in _expected_rejects(root).values()).items())
    }
    assert report["text_changes"] == {"U+0085": 1, "U+00AD": 1, "U+200B": 1, "U+2060": 1}
    charset = Charset.from_dict(charset_document(manifest))
    assert not [symbol for symbol in charset.symbols if not symbol.isprintable() and symbol != " "]
