"""The main job (ingestion, training, evaluation) on a page-XML source, in a real Kedro session and MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_DATA, SMOKE_GATE, requires_shared_data
from tests.pipeline_runs import TINY_TRAINING, run_session

HOOKER = SHARED_DATA / "hooker_pagexml_pages"


@pytest.mark.slow
@requires_shared_data("hooker_pagexml_pages")
def test_main_job_runs_on_xml_pages(kedro_project: Path, one_torch_thread):
    parameters = {
        "data": {
            "seed": 5,
            "sources": [{"kind": "xml_pages", "name": "hooker", "path": str(HOOKER)}],
            "image_height": 32,
            "max_width": 256,
            "split_fractions": {"train": 0.6, "valid": 0.2, "test": 0.2},
            "max_reject_fraction": 0.05,
        },
        "training": {
            **TINY_TRAINING,
            "epochs": 1,
            "recognizer_pretraining": {"epochs": 1, "batch_size": 16, **SMOKE_GATE},
        },
        "evaluation": {"bootstrap_resamples": 100, "log_models": False},
        "diagnostics": {},
    }
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    catalog = run_session(kedro_project)
    manifest = catalog.load("manifest")
    assert len(manifest) == 145 and (manifest["source_kind"] == "xml_pages").all()
    assert manifest.groupby("group")["split"].nunique().max() == 1  # no page in two splits
    report = catalog.load("dataset_report")
    assert report["rejects_per_page_and_reason"] == {
        str(HOOKER / "JDH_2_16_47_004.xml"): {"empty_transcription": 3},
        str(HOOKER / "JDH_2_16_59_004.xml"): {"empty_transcription": 1},
    }
    summary = catalog.load("evaluation_summary")
    assert summary["split"] == "test" and summary["headline_recognizer"] == "judge"
    assert summary["judge"]["lines"] == summary["in_loop"]["lines"] == (manifest["split"] == "test").sum()
