"""The held-out real test inside the evaluation pipeline: a real Kedro session, a real MLflow store, small real
models trained by the main job, real page pairs and real lines on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from htr_pipeline.data.images import read_grayscale
from htr_pipeline.metrics import binarise, corpus_rate, dibco_scores
from tests.conftest import small_synthetic_parameters
from tests.data.test_real_paper import write_page_pairs
from tests.evaluation.test_real_scans import write_line_set
from tests.pipeline_runs import TINY_TRAINING, logged_runs, mlflow_client, run_session


@pytest.mark.slow
def test_the_main_job_scores_real_pages_and_lines_no_training_saw(tmp_path: Path, kedro_project: Path) -> None:
    pages = write_page_pairs(tmp_path / "real_pages", ["r1", "r2", "r3"])
    lines = write_line_set(tmp_path / "real_lines", {"a": "test", "b": "test", "c": "valid"})
    paper = write_page_pairs(tmp_path / "paper", ["p1", "p2", "p3", "p4"])
    parameters = small_synthetic_parameters(train=12, valid=4, test=4)
    # Its lines on real paper, with grain: the dataset report and gallery must read such recipes too.
    parameters["data"]["real_paper"] = {
        "folders": [{"kind": "page_pairs", "name": "paper", "path": str(paper)}],
        "paper_grain": {"probability": 1.0, "strength": [0.2, 1.0]},
    }
    # The model is chosen on the valid split's real pages (their paper reached valid lines only).
    parameters["training"] = {**TINY_TRAINING, "epochs": 1, "monitor": "val/page_f_measure"}
    parameters["evaluation"] = {
        "bootstrap_resamples": 200,
        "real_test": {
            "page_pairs": {"path": str(pages)},
            "lines": {"path": str(lines)},
            "page_window": 64,
            "window_overlap": 16,
        },
    }
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))

    catalog = run_session(kedro_project)
    manifest = catalog.load("manifest")
    assert manifest["paper_page"].str.startswith("paper:").all(), "every synthesised line on the real paper"
    assert catalog.load("dataset_report")["samples_on_real_paper"] == len(manifest)
    assert list((kedro_project / "data" / "08_reporting").glob("dataset_gallery.png/*/dataset_gallery.png"))
    summary = catalog.load("real_test_summary")
    page_table, line_table = catalog.load("real_test_pages"), catalog.load("real_test_lines")
    assert summary["configured"] and summary["pages"]["pages"] == 3 and summary["lines"]["lines"] == 2
    assert list(line_table["recognizer"].unique()) == ["judge", "in_loop"], "the judge is the headline"
    assert summary["lines"]["headline_recognizer"] == "judge"
    for metric in ("f_measure", "drd"):
        assert summary["pages"][metric]["restored"] == pytest.approx(page_table[f"restored_{metric}"].mean())
    judge = line_table[line_table["recognizer"] == "judge"]
    assert summary["lines"]["judge"]["cer_corpus_restored"] == corpus_rate(
        judge["char_edits_restored"], judge["char_reference_length"]
    )
    restored = catalog.load("real_test_restored_pages")
    assert sorted(path.name for path in restored.root.iterdir()) == ["r1.png", "r2.png", "r3.png"]
    assert restored.read("r2.png").shape == (120, 200), "each page restored whole, at its own size"
    assert np.asarray(catalog.load("real_test_pictures")).shape[0] > 100

    (run,) = logged_runs(kedro_project)
    client = mlflow_client(kedro_project)
    metrics = client.get_run(run.info.run_id).data.metrics
    training = catalog.load("training_summary")
    valid_pages = sorted(manifest.loc[manifest["split"] == "valid", "paper_page"].unique())
    assert training["validation_pages"] == valid_pages and valid_pages, "each valid page pair, scored every epoch"
    scans = [
        dibco_scores(binarise(read_grayscale(paper / "images" / f"{page.split(':')[1]}.png"), "otsu"), truth)
        for page in valid_pages
        for truth in [read_grayscale(paper / "gt" / f"{page.split(':')[1]}_gt.png") < 128]
    ]
    (degraded,) = client.get_metric_history(run.info.run_id, "val_degraded/page_f_measure")
    assert (degraded.step, degraded.value) == (0, pytest.approx(np.mean([score["f_measure"] for score in scans])))
    assert training["validation_pages_f_measure_scans"] == pytest.approx(degraded.value)
    (restored,) = client.get_metric_history(run.info.run_id, "val/page_f_measure")
    assert restored.step == 1 and 0.0 <= restored.value <= 100.0
    assert training["best_epoch_per_metric"]["val/page_f_measure"] == 1
    folder = kedro_project / training["checkpoint_folder"]
    assert (folder / "best_page_f_measure.pt").read_bytes() == (folder / "best.pt").read_bytes()
    assert metrics["real_test/pages_f_measure_restored"] == pytest.approx(summary["pages"]["f_measure"]["restored"])
    assert "real_test/lines_judge_cer_reduction" in metrics
    logged = {item.path for item in mlflow_client(kedro_project).list_artifacts(run.info.run_id, "real_test")}
    assert logged == {"real_test/summary.json", "real_test/pictures.png"}, "as catalog.yml declares"
