"""Greedy readings of hand-built recognizer outputs under each label convention.

The logits are what a recognizer emits for a line: one row per time step, the highest score on the class it
reads. Each reference is written as a CTC path (every symbol for two steps, then a blank) in some convention.
"""

from collections.abc import Callable

import numpy as np
import pytest

from htr_pipeline.charset import Charset
from htr_pipeline.diagnostics.label_convention import (
    CONVENTIONS,
    OUTSIDE_SYMBOLS,
    decode_with_convention,
    label_convention_report,
)

# Spaces and repeated letters ("ll", "oo") need the blank between them, as real lines do.
REFERENCES = ["hello world", "a cool ball", "low wall", "bread", "do we hear"]
CHARSET = Charset.from_texts([*REFERENCES, "xyz"])  # symbols the lines never use: the first is " ", the last "z"
MARGIN = 0.05
STEPS_PER_SYMBOL = 2

ClassOf = Callable[[int], int]
"""Class a recognizer emits for the symbol at a position of CHARSET.symbols."""


def _logits_for(text: str, class_of: ClassOf, blank_class: int, num_classes: int, seed: int = 0) -> np.ndarray:
    """(time_steps, num_classes) float32 scores whose argmax path spells ``text``."""
    path = []
    for symbol in text:
        path += [class_of(CHARSET.symbols.index(symbol))] * STEPS_PER_SYMBOL + [blank_class]
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 0.1, size=(len(path), num_classes)).astype(np.float32)
    scores[np.arange(len(path)), path] += 5.0
    return scores


def _lines(class_of: ClassOf, blank_class: int, num_classes: int = CHARSET.num_classes) -> list[np.ndarray]:
    return [_logits_for(text, class_of, blank_class, num_classes, seed) for seed, text in enumerate(REFERENCES)]


def test_logits_in_the_charset_convention_read_perfectly():
    # The charset's convention as the charset states it: blank 0, symbol i has label i + 1.
    logits = _lines(lambda position: position + 1, blank_class=0)
    report = label_convention_report(logits, REFERENCES, CHARSET, MARGIN)
    assert report.audit == "label_convention"
    assert report.verdict == "ok"
    assert report.details["cer"]["charset"] == 0.0
    assert min(report.details["cer"][name] for name in CONVENTIONS if name != "charset") > MARGIN
    examples = report.details["examples"]
    assert [example["readings"]["charset"] for example in examples] == REFERENCES[: len(examples)]
    assert report.details["lines"] == len(REFERENCES)


@pytest.mark.parametrize(
    ("alternative", "class_of", "blank_class"),
    [
        # A recognizer trained with the blank last (what the previous system's evaluation assumed).
        ("blank_last", lambda position: position, CHARSET.num_classes - 1),
        # A recognizer trained with a charset that lacked the first symbol: every class one below.
        ("labels_shifted_up", lambda position: position, 0),
        # A recognizer trained with a charset that had one more symbol at the front: every class one above.
        ("labels_shifted_down", lambda position: position + 2, 0),
    ],
)
def test_logits_shifted_by_one_class_are_a_problem_naming_the_convention(alternative, class_of, blank_class):
    report = label_convention_report(_lines(class_of, blank_class), REFERENCES, CHARSET, MARGIN)
    assert report.verdict == "problem"
    cer = report.details["cer"]
    # Under labels_shifted_up the first symbol (" ") shares class 0 with the blank, so spaces are lost: not 0.
    assert cer[alternative] == min(cer.values()) < 0.2
    assert cer["charset"] > 0.5
    (finding,) = report.findings
    assert f"the {alternative} convention" in finding.message
    assert "check the charset file" in finding.message


def test_random_logits_are_an_inconclusive_warning():
    rng = np.random.default_rng(7)
    logits = [rng.normal(size=(3 * len(text), CHARSET.num_classes)).astype(np.float32) for text in REFERENCES * 4]
    report = label_convention_report(logits, REFERENCES * 4, CHARSET, margin=0.1)
    assert report.verdict == "warning"
    assert report.details["cer"]["charset"] > 0.9
    assert "inconclusive" in report.findings[0].message


def test_an_alternative_better_by_less_than_the_margin_is_not_a_problem():
    # Two lines in the charset's convention, three with the blank last: blank_last reads somewhat better.
    charset_lines = _lines(lambda position: position + 1, blank_class=0)[:2]
    blank_last_lines = _lines(lambda position: position, blank_class=CHARSET.num_classes - 1)[2:]
    logits = charset_lines + blank_last_lines
    strict = label_convention_report(logits, REFERENCES, CHARSET, margin=0.0)
    assert strict.verdict == "problem"
    advantage = strict.details["cer"]["charset"] - strict.details["cer"]["blank_last"]
    assert advantage > 0
    lenient = label_convention_report(logits, REFERENCES, CHARSET, margin=advantage + 0.01)
    assert lenient.verdict != "problem"


def test_more_output_classes_than_the_charset_is_a_problem():
    logits = _lines(lambda position: position + 1, blank_class=0, num_classes=CHARSET.num_classes + 1)
    report = label_convention_report(logits, REFERENCES, CHARSET, MARGIN)
    assert report.verdict == "problem"
    assert f"emits {CHARSET.num_classes + 1} classes" in report.findings[0].message
    assert report.details["cer"]["charset"] == 0.0  # the extra class is never the argmax here


def test_decode_with_convention_merges_repeats_and_drops_that_conventions_blank():
    charset = Charset(symbols=("a", "b", "c"))  # 4 classes
    assert decode_with_convention([1, 1, 0, 1, 2, 2, 0], charset, "charset") == "aab"
    assert decode_with_convention([0, 0, 3, 0, 1], charset, "blank_last") == "aab"
    assert decode_with_convention([1, 0, 2, 3], charset, "labels_shifted_up") == "bc" + OUTSIDE_SYMBOLS
    assert decode_with_convention([1, 2, 3, 0, 3], charset, "labels_shifted_down") == OUTSIDE_SYMBOLS + "abb"
    assert decode_with_convention([4, 0], charset, "charset") == OUTSIDE_SYMBOLS


def test_bad_inputs_raise_at_the_boundary():
    logits = _lines(lambda position: position + 1, blank_class=0)
    with pytest.raises(ValueError, match="references"):
        label_convention_report(logits, REFERENCES[:-1], CHARSET, MARGIN)
    with pytest.raises(ValueError, match="margin"):
        label_convention_report(logits, REFERENCES, CHARSET, -0.1)
    with pytest.raises(ValueError, match="unknown label convention"):
        decode_with_convention([1], CHARSET, "blank_first")


def test_report_renders_markdown_and_json_safe_details():
    import json

    logits = _lines(lambda position: position, blank_class=CHARSET.num_classes - 1)
    report = label_convention_report(logits, REFERENCES, CHARSET, MARGIN)
    json.dumps(report.to_dict(), allow_nan=False)
    markdown = report.to_markdown()
    assert "| blank_last |" in markdown
    assert "hello world" in markdown
