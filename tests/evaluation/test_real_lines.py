"""The recognizer alone, evaluated on real handwriting (the Testaments de Poilus test split)."""

from pathlib import Path

import pytest
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import RecognizerCheckpoint
from htr_pipeline.config import DataConfig, EvaluationConfig, RecognizerConfig
from htr_pipeline.data.ingestion import assign_splits, charset_document, ingest
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.data.sources import read_sources
from htr_pipeline.datasets.file_folder import FileFolderDataset
from htr_pipeline.evaluation.run import evaluate_split
from htr_pipeline.models import build_recognizer
from htr_pipeline.trained_run import TrainedRun
from tests.conftest import SHARED_DATA, requires_shared_data


@pytest.mark.slow
@requires_shared_data("testaments_poilus_fr")
def test_recognizer_only_evaluation_on_the_real_test_split(tmp_path: Path):
    source = {"kind": "line_folder", "name": "poilus", "path": str(SHARED_DATA / "testaments_poilus_fr")}
    data = DataConfig.model_validate({"sources": [source], "num_workers": 2})
    reading = read_sources(data)
    dataset = ingest(assign_splits(reading.candidates, data), reading.rejects, data)
    FileFolderDataset(filepath=str(tmp_path / "images")).save(dataset.images)
    charset = Charset.from_dict(charset_document(dataset.manifest))
    settings = RecognizerConfig(conv_channels=[8, 16], width_downsampling=4, lstm_hidden=16, lstm_layers=1)
    torch.manual_seed(0)
    stored = RecognizerCheckpoint(
        weights=build_recognizer(settings, charset.num_classes).state_dict(), config=settings, charset=charset
    )
    models = TrainedRun.from_recognizer_checkpoint(stored, tmp_path / "recognizer.pt")
    config = EvaluationConfig(recognizer_only=True, device="cpu", bootstrap_resamples=100, log_models=False)
    result = evaluate_split(dataset.manifest, LineImageStore(tmp_path / "images"), charset, models, config)
    assert len(result.samples) == 260
    assert result.summary["in_loop"]["lines_with_text"] == 260
    assert (
        result.summary["in_loop"]["cer_corpus_clean"] > 0
    )  # an untrained reader: the point is that real lines are scored
    assert (
        result.summary["in_loop"]["cer_corpus_restored"] is None and result.summary["in_loop"]["psnr_gain_db"] is None
    )
    assert "poilus:" in result.report
