import unicodedata

import pytest
import torch

from htr_pipeline.charset import (
    BLANK_INDEX,
    Charset,
    UnknownSymbolError,
    control_characters,
    draws_nothing,
    normalise_text,
    text_changes,
)


def test_round_trip_including_nfd_input():
    charset = Charset.from_texts(["Père Noël", "œuvre"])
    nfd = unicodedata.normalize("NFD", "Père œuvre")
    assert nfd != "Père œuvre"
    labels = charset.encode(nfd)
    assert BLANK_INDEX not in labels
    assert labels == charset.encode("Père œuvre")  # NFD input encodes as its NFC form
    assert charset.decode_greedy(labels) == "Père œuvre"  # no repeated symbol: greedy decoding is the inverse


def test_symbols_are_nfc_characters_in_code_point_order_with_counts():
    charset = Charset.from_texts([unicodedata.normalize("NFD", "éa"), "a b"])
    assert charset.symbols == (" ", "a", "b", "é")
    assert charset.counts == {" ": 1, "a": 2, "b": 1, "é": 1}
    assert charset.num_classes == 5


def test_blank_is_zero_and_labels_start_at_one():
    charset = Charset.from_texts(["ab"])
    assert charset.blank_index == 0
    assert charset.encode("ab") == [1, 2]


def test_greedy_decoding_merges_repeats_then_drops_blanks():
    charset = Charset.from_texts(["lo"])
    letter_l, letter_o = charset.encode("lo")
    best_path = [0, letter_l, letter_l, 0, letter_l, letter_o, letter_o, 0]
    assert charset.decode_greedy(best_path) == "llo"


def test_unknown_characters_are_named_not_dropped():
    charset = Charset.from_texts(["abc"])
    with pytest.raises(UnknownSymbolError, match=r"'z' \(U\+007A\)"):
        charset.encode("abz")


def test_decoding_a_label_outside_the_charset_is_an_error():
    with pytest.raises(ValueError, match="outside the charset"):
        Charset.from_texts(["a"]).decode_greedy([5])


def test_stored_form_round_trips_and_checks_the_convention():
    charset = Charset.from_texts(["Testament ſ’"])
    stored = charset.to_dict()
    assert Charset.from_dict(stored) == charset
    with pytest.raises(ValueError, match="blank_index"):
        Charset.from_dict({**stored, "blank_index": len(charset.symbols)})


def test_normalisation_folds_whitespace():
    assert normalise_text("  a\t b \n") == "a b"


def test_greedy_labels_on_the_device_are_the_labels_of_the_greedy_reading():
    charset = Charset.from_texts(["abc"])
    blank = charset.blank_index
    # "a a - b b - b c c" collapses to "abbc"; the second path is cut at its own 4 time steps: "c a" -> "ca".
    best_paths = torch.tensor([[1, 1, blank, 2, 2, blank, 2, 3, 3], [3, blank, 1, 1, 2, 2, 3, 3, 3]])
    labels, lengths = Charset.greedy_labels(best_paths, torch.tensor([9, 4]))
    assert lengths.tolist() == [4, 2]
    assert labels.shape == (2, 9)
    for row, length, path, steps in zip(labels.tolist(), lengths.tolist(), best_paths.tolist(), (9, 4), strict=True):
        assert row[:length] == charset.encode(charset.decode_greedy(path[:steps]))
        assert row[length:] == [blank] * (9 - length)


INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u202e\u2066\u2069\u034f\ufe0f\U000e0041"


def test_invisible_format_characters_are_removed_and_counted():
    text = "\ufeffmon\u00adde\u200bmain\u200c\u200d\u2060!"
    assert normalise_text(text) == "mondemain!"
    assert text_changes(text) == {
        "U+00AD": 1,
        "U+200B": 1,
        "U+200C": 1,
        "U+200D": 1,
        "U+2060": 1,
        "U+FEFF": 1,
    }
    assert Charset.from_texts([text]).symbols == tuple(sorted(set("mondemain!")))


def test_the_text_rule_removes_what_draws_nothing_keeps_what_draws_and_counts_inner_line_breaks():
    assert all(draws_nothing(symbol) for symbol in INVISIBLE)
    # Category Cf that draws a glyph (Arabic number sign), spaces and letters are kept.
    assert not any(draws_nothing(symbol) for symbol in "\u0600\u06dd a\u00e9\u3000")
    assert normalise_text("\u200fab\u202ec\u2066d\u2069") == "abcd"
    assert text_changes("\u200fab\u202ec\u2066d\u2069") == {"U+200F": 1, "U+202E": 1, "U+2066": 1, "U+2069": 1}
    # A carriage return inside a text folds to a space and is counted; one at its end is only trimmed.
    assert normalise_text("deux\rmots\r") == "deux mots" and text_changes("deux\rmots\r") == {"U+000D": 1}


def test_control_characters_are_found_but_tabs_and_newlines_fold_to_spaces():
    assert control_characters("a\x00b\x07c\x00\x9b") == ["\x00", "\x07", "\x9b"]
    assert control_characters("a\tb\nc\r\x85") == []
    assert normalise_text("a\tb\nc") == "a b c"


@pytest.mark.parametrize("symbol", ["\x00", "\x07", "\x1b", "\x7f", "\x9b", *INVISIBLE])
def test_a_charset_refuses_control_and_invisible_symbols(symbol: str):
    with pytest.raises(ValueError, match=rf"charset symbol U\+{ord(symbol):04X} is a control or invisible"):
        Charset(symbols=("a", symbol))
