"""A real (untrained) recognizer reading real PNG lines: per-line logits, summed CTC and blank share."""

import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from htr_pipeline.charset import Charset
from htr_pipeline.config import RecognizerConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.diagnostics.recognizer_readings import read_clean_lines
from htr_pipeline.models import build_recognizer
from tests.conftest import write_line_png

TEXTS = {"a": "abba", "b": "cab", "c": "xyz"}  # "xyz": the charset lacks x, y and z
WIDTHS = {"a": 96, "b": 64, "c": 80}


def test_each_line_gets_its_own_logits_summed_ctc_and_blank_share(tmp_path: Path):
    for index, (sample_id, width) in enumerate(WIDTHS.items()):
        write_line_png(tmp_path / "clean" / f"{sample_id}.png", width=width, height=32, seed=index)
    lines = pd.DataFrame(
        {
            "sample_id": list(TEXTS),
            "transcription": list(TEXTS.values()),
            "width": list(WIDTHS.values()),
            "clean_path": [f"clean/{sample_id}.png" for sample_id in TEXTS],
            "degraded_path": [f"clean/{sample_id}.png" for sample_id in TEXTS],
        }
    )
    charset = Charset.from_texts(["abc"])
    torch.manual_seed(0)
    settings = RecognizerConfig(conv_channels=[8, 16], width_downsampling=4, lstm_hidden=8, lstm_layers=1)
    recognizer = build_recognizer(settings, charset.num_classes)

    readings = read_clean_lines(recognizer, lines, LineImageStore(tmp_path), charset, torch.device("cpu"), 2)

    assert [reading.sample_id for reading in readings] == ["a", "b", "c"]
    assert [reading.logits.shape for reading in readings] == [(24, 4), (16, 4), (20, 4)]
    for reading, labels in zip(readings[:2], ([1, 2, 2, 1], [3, 1, 2]), strict=False):
        log_probs = torch.from_numpy(reading.logits).log_softmax(-1).unsqueeze(1)
        expected = F.ctc_loss(log_probs, torch.tensor([labels]), [reading.time_steps], [len(labels)], reduction="sum")
        assert math.isclose(reading.ctc_loss_nats, float(expected), rel_tol=1e-5)
        blank_share = float((torch.from_numpy(reading.logits).argmax(-1) == 0).float().mean())
        assert reading.blank_share == blank_share
    assert math.isnan(readings[2].ctc_loss_nats)
