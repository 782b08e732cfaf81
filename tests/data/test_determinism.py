import numpy as np
import pandas as pd

from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import assign_splits, ingest
from htr_pipeline.data.sources import read_sources
from tests.conftest import small_synthetic_parameters


def _ingest(seed: int, num_workers: int = 1):
    parameters = small_synthetic_parameters(train=10, valid=3, test=3)["data"] | {
        "seed": seed,
        "num_workers": num_workers,
    }
    config = DataConfig.model_validate(parameters)
    reading = read_sources(config)
    return ingest(assign_splits(reading.candidates, config), reading.rejects, config)


def test_same_seed_gives_identical_manifest_and_pixels_whatever_the_worker_count():
    first, second = _ingest(seed=3), _ingest(seed=3, num_workers=2)
    pd.testing.assert_frame_equal(first.manifest, second.manifest)
    assert first.images.keys() == second.images.keys()
    assert all(np.array_equal(first.images[key], second.images[key]) for key in first.images)


def test_other_seed_gives_other_lines():
    first, other = _ingest(seed=3), _ingest(seed=4)
    assert not first.manifest["transcription"].equals(other.manifest["transcription"])
