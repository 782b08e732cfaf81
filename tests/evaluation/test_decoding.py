"""Greedy and beam-search readings of CTC outputs."""

import math

import torch

from htr_pipeline.charset import Charset
from htr_pipeline.evaluation.decoding import reader


def _logits(probabilities: list[list[float]]) -> torch.Tensor:
    return torch.tensor([[math.log(p) for p in step] for step in probabilities]).unsqueeze(0)


def test_beam_search_sums_alignments_where_greedy_takes_one_path():
    charset = Charset.from_texts(["a"])  # classes: blank, "a"
    # Each of 2 steps: blank 0.6, "a" 0.4. Best path blank-blank gives "" (p = 0.36); "a" sums (a,a), (a,-), (-,a)
    # = 0.16 + 0.24 + 0.24 = 0.64, so the most probable text is "a".
    logits = _logits([[0.6, 0.4], [0.6, 0.4]])
    widths = torch.tensor([2])
    assert reader(None)(logits, widths, 1, charset) == [""]
    assert reader(8)(logits, widths, 1, charset) == ["a"]


def test_beam_search_agrees_with_greedy_on_a_confident_reading_and_keeps_repeats():
    charset = Charset.from_texts(["hello"])
    blank, e, h, l, o = 0, *charset.encode("ehlo")  # noqa: E741
    path = [blank, h, e, l, blank, l, o, blank]
    logits = _logits(
        [[0.96 if c == step else 0.04 / (charset.num_classes - 1) for c in range(charset.num_classes)] for step in path]
    )
    widths = torch.tensor([len(path)])
    assert reader(None)(logits, widths, 1, charset) == reader(5)(logits, widths, 1, charset) == ["hello"]
