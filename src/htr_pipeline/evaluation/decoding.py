"""Reading CTC outputs: greedy best path (the default) or beam search through flashlight-text.

flashlight-text (the decoder torchaudio's ``ctc_decoder`` wraps) is an optional dependency:
``pip install -e ".[beam]"``. Without a lexicon or language model its beam search finds the most probable
labelling summed over alignments, which can differ from the single best path.
"""

from __future__ import annotations

import numpy as np
import torch

from htr_pipeline.charset import BLANK_INDEX, Charset
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.scoring.lines import Reader, greedy_readings


class BeamSearchUnavailableError(ImportError):
    """``evaluation.beam_search`` is set but flashlight-text is not installed."""


def reader(beam_size: int | None) -> Reader:
    """Greedy decoding for ``None``, else a beam search of that width."""
    if beam_size is None:
        return greedy_readings
    decoder = _beam_decoder(beam_size)

    def beam_readings(logits: torch.Tensor, widths: torch.Tensor, width_downsampling: int, charset: Charset) -> list:
        # logits: (batch, time_steps, num_classes)
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        readings = []
        for line_log_probs, width in zip(log_probs, widths.cpu().tolist(), strict=True):
            steps = ctc_time_steps(int(width), width_downsampling)
            emissions = np.ascontiguousarray(line_log_probs[:steps], dtype=np.float32)
            best = decoder.decode(emissions.ctypes.data, steps, emissions.shape[1])[0]
            readings.append(charset.decode_greedy(best.tokens))  # merge repeats, drop blanks
        return readings

    return beam_readings


def _beam_decoder(beam_size: int):
    try:
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
            ZeroLM,
        )
    except ImportError:
        raise BeamSearchUnavailableError(
            'evaluation.beam_search needs flashlight-text: pip install -e ".[beam]" (or set beam_search: null)'
        ) from None
    options = LexiconFreeDecoderOptions(
        beam_size=beam_size,
        beam_size_token=beam_size,
        beam_threshold=50.0,
        lm_weight=0.0,
        sil_score=0.0,
        log_add=True,
        criterion_type=CriterionType.CTC,
    )
    return LexiconFreeDecoder(options, ZeroLM(), BLANK_INDEX, BLANK_INDEX, [])
