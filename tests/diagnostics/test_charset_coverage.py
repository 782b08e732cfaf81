"""Charset coverage on small real manifests and real charsets: missing characters per split, rare symbols,
text not in NFC and characters spelled two ways."""

from __future__ import annotations

import io
import json

import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.diagnostics.charset_coverage import charset_coverage_report, plot_charset_coverage

COMPOSED_E_ACUTE = "\u00e9"
COMBINING_ACUTE = "\u0301"
COMBINING_TILDE = "\u0303"


def _manifest(rows: list[tuple[str, str | None]]) -> pd.DataFrame:
    """(split, transcription) rows; sample ids are the split's first letter and the row's number in the split."""
    records = []
    for split, text in rows:
        number = sum(record["split"] == split for record in records)
        records.append({"sample_id": f"{split[0]}{number}", "split": split, "transcription": text})
    return pd.DataFrame(records)


def _verdicts(report) -> list[str]:
    return [finding.verdict for finding in report.findings]


def test_characters_a_split_needs_but_the_charset_lacks_are_counted_with_their_lines():
    manifest = _manifest(
        [
            ("train", "abc ab"),
            ("train", "cab"),
            ("valid", "abß"),
            ("valid", "ßßa"),
            ("valid", "ab"),
            ("test", "q" + COMBINING_TILDE + "a"),  # no precomposed q-tilde: NFC keeps the mark apart
        ]
    )
    charset = Charset.from_texts(["abc ab", "cab"])

    report = charset_coverage_report(manifest, charset, rare_count=1)

    assert report.details["missing_by_split"]["train"] == []
    assert report.details["missing_by_split"]["valid"] == [
        {"character": "ß", "shown": "'ß' (U+00DF)", "count": 3, "lines": 2, "examples": ["v0", "v1"]}
    ]
    assert [record["character"] for record in report.details["missing_by_split"]["test"]] == ["q", COMBINING_TILDE]
    valid_message, test_message = (finding.message for finding in report.findings)
    assert valid_message.startswith("valid: 1 character(s)")
    assert "'ß' (U+00DF) ×3 in 2 lines" in valid_message
    assert "cannot fall below 37.50%" in valid_message  # 3 of the 8 valid characters
    assert "U+0303 COMBINING TILDE" in test_message  # the invisible mark is named, not printed
    assert report.verdict == "warning"


def test_a_train_character_missing_from_the_charset_is_a_problem():
    manifest = _manifest([("train", "abc"), ("train", "abcd"), ("valid", "cab")])
    report = charset_coverage_report(manifest, Charset.from_texts(["abc"]), rare_count=1)

    assert report.details["missing_by_split"]["train"] == [
        {"character": "d", "shown": "'d' (U+0064)", "count": 1, "lines": 1, "examples": ["t1"]}
    ]
    assert _verdicts(report) == ["problem"]
    assert report.findings[0].message.startswith("train: 1 character(s)")
    assert "cannot be encoded" in report.findings[0].message


def test_symbols_seen_fewer_than_rare_count_times_in_train_are_listed_with_their_counts():
    # Train counts: a 3, space 2, b 2, c 1; 'z' is in the charset but never in train. Valid does not count.
    manifest = _manifest([("train", "aaa bb c"), ("valid", "zzzzzz c")])
    charset = Charset(symbols=(" ", "a", "b", "c", "z"))

    report = charset_coverage_report(manifest, charset, rare_count=3)

    assert report.details["symbol_counts"] == {" ": 2, "a": 3, "b": 2, "c": 1, "z": 0}
    assert [(record["symbol"], record["train_count"]) for record in report.details["rare_symbols"]] == [
        ("z", 0),
        ("c", 1),
        (" ", 2),
        ("b", 2),
    ]
    assert _verdicts(report) == ["warning"]
    message = report.findings[0].message
    assert message.startswith("4 of 5 charset symbols occur fewer than 3 times")
    assert "(1 never)" in message and "'z' (U+007A) ×0" in message and "U+0020 SPACE ×2" in message


def test_a_decomposed_and_a_composed_e_acute_collide_and_are_a_problem_when_the_charset_spells_both():
    # q + U+0301 has no precomposed form, so a charset built from NFC text holds the bare mark as well as é.
    train_texts = [f"caf{COMPOSED_E_ACUTE}", "e q" + COMBINING_ACUTE]
    charset = Charset.from_texts(train_texts)
    assert {COMPOSED_E_ACUTE, "e", COMBINING_ACUTE} <= set(charset.symbols)
    manifest = _manifest([*(("train", text) for text in train_texts), ("valid", "cafe" + COMBINING_ACUTE)])

    report = charset_coverage_report(manifest, charset, rare_count=1)

    [collision] = report.details["collisions"]["spellings"]
    assert collision["character"] == "'é' (U+00E9)"
    assert {spelling["code_points"]: spelling["examples"] for spelling in collision["spellings"]} == {
        "U+00E9": ["t0"],
        "U+0065 U+0301": ["v0"],
    }
    assert collision["two_label_sequences"] is True
    assert report.details["non_nfc_lines"]["valid"]["lines"] == 1
    assert report.details["non_nfc_lines"]["train"]["lines"] == 0
    assert report.details["collisions"]["combining_symbols"] == [
        {
            "symbol": COMBINING_ACUTE,
            "shown": "U+0301 COMBINING ACUTE ACCENT",
            "composes_into": ["'é' (U+00E9) = 'e' (U+0065) + U+0301 COMBINING ACUTE ACCENT"],
        }
    ]
    assert _verdicts(report) == ["problem", "warning", "warning"]  # the collision, text not NFC, the bare mark
    assert "'é' (U+00E9) is spelled in 2 ways" in report.findings[0].message
    assert report.details["missing_by_split"]["valid"] == []  # NFC composes the valid line before the lookup


def test_a_spelling_only_normalisation_can_encode_is_a_warning_naming_the_decomposed_code_points():
    charset = Charset.from_texts([f"caf{COMPOSED_E_ACUTE}"])  # no bare mark: only the composed spelling encodes
    manifest = _manifest([("train", f"caf{COMPOSED_E_ACUTE}"), ("valid", "cafe" + COMBINING_ACUTE)])

    report = charset_coverage_report(manifest, charset, rare_count=1)

    [collision] = report.details["collisions"]["spellings"]
    assert collision["two_label_sequences"] is False
    assert _verdicts(report) == ["warning"]
    message = report.findings[0].message
    assert "valid 1 of 1 lines" in message
    assert "v0 has 'e' (U+0065) + U+0301 COMBINING ACUTE ACCENT for 'é' (U+00E9)" in message
    assert "spelled both ways across lines: 'é' (U+00E9)" in message


def test_a_clean_manifest_is_ok_with_its_numbers_and_the_report_is_json_safe():
    manifest = _manifest([("train", "abab"), ("train", "baba"), ("valid", "ab"), ("valid", None)])
    report = charset_coverage_report(manifest, Charset.from_texts(["abab", "baba"]), rare_count=4)

    assert _verdicts(report) == ["ok"]
    assert report.findings[0].message.startswith(
        "All 3 transcribed lines (train 2, valid 1) are covered by the 2-symbol charset, every symbol occurs at "
        "least 4 times in train (rarest: 'a' (U+0061) ×4)"
    )
    stored = json.loads(json.dumps(report.to_dict()))
    assert stored["verdict"] == "ok" and stored["symbol_counts"] == {"a": 4, "b": 4}
    assert "**Verdict: ok**" in report.to_markdown()


def test_the_coverage_plot_renders_rare_and_missing_characters():
    manifest = _manifest([("train", "aaaa bc"), ("valid", "ß" + "q" + COMBINING_TILDE), ("test", "ßx")])
    buffer = io.BytesIO()
    plot_charset_coverage(manifest, Charset.from_texts(["aaaa bc"]), rare_count=2).savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000
