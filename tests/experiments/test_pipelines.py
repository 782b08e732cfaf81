"""`kedro run --pipelines=sweep` and `--pipelines=comparison` on a tiny project, with real `kedro run` trials, a
real MLflow sqlite store and a real Optuna study.

One project serves the whole module (each step costs real training): data ingested once; one plain `kedro run`
of training and evaluation; a sweep of two CTC weights whose baseline trial has exactly those settings; then
comparisons of the runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from htr_pipeline.config import ConfigError
from htr_pipeline.experiments.runs import UnpairedRunsError
from tests.conftest import small_synthetic_parameters
from tests.pipeline_runs import TINY_TRAINING, logged_runs, mlflow_client, run_session
from tests.pipelines.test_what_people_see import _new_project

pytestmark = pytest.mark.slow

SWEEP = {
    "study_name": "tiny",
    "space": {"training.losses.weights.ctc": {"choices": [1.0, 3.0]}},
    "fixed": {"training.epochs": 1},
    "seeds": [5],
    "objective_split": "valid",
    "heartbeat_seconds": 2,
}
PLAIN_RUN_PARAMS = "training.epochs=1,training.gan_seed=5"
"""The baseline trial's settings, given to a plain `kedro run` the way a person would."""


def _parameters() -> dict:
    parameters = small_synthetic_parameters()
    parameters["training"] = TINY_TRAINING
    # Tiny models learn nothing in one epoch: the runs must not fail for it (evaluation.expect_gain).
    parameters["evaluation"] = {"bootstrap_resamples": 200, "log_models": False, "expect_gain": False}
    parameters["comparison"] = {"bootstrap_resamples": 300, "bootstrap_seed": 4}
    parameters["sweep"] = SWEEP
    return parameters


def _artifact(project: Path, run_id: str, path: str) -> Path:
    folder = tempfile.mkdtemp()
    return Path(mlflow_client(project).download_artifacts(run_id, path, folder))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ingested tiny data, then one plain `kedro run --pipelines=training,evaluation` (a process of its own, as a
    person would start it) with the baseline trial's settings. Sessions run in the project folder, as `kedro run`
    does (relative catalog paths are relative to it)."""
    project = _new_project(tmp_path_factory.mktemp("experiments"))
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(_parameters()))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        run_session(project, "data_ingestion")
        plain = subprocess.run(
            [sys.executable, "-m", "kedro", "run", "--pipelines=training,evaluation", "--params", PLAIN_RUN_PARAMS],
            cwd=project,
            capture_output=True,
            text=True,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
        )
        assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
        yield project


@pytest.fixture(scope="module")
def swept(project: Path) -> dict:
    """The sweep, run as `kedro run --pipelines=sweep`; its saved summary."""
    run_session(project, "sweep")
    (summary_file,) = (project / "data" / "08_reporting" / "sweep_summary.json").glob("*/sweep_summary.json")
    return json.loads(summary_file.read_text())


def _plain_run(project: Path):
    (run,) = [
        run
        for run in logged_runs(project)
        if run.info.run_name == "training+evaluation" and "htr.sweep.study" not in run.data.tags
    ]
    return run


def _trial_runs(project: Path) -> dict[str, object]:
    return {
        run.data.tags["htr.sweep.label"]: run
        for run in logged_runs(project)
        if "htr.sweep.trial" in run.data.tags and "htr.sweep.objective_split" not in run.data.tags
    }


def test_a_misspelt_key_in_the_search_space_fails_before_any_training(project: Path):
    with pytest.raises(ConfigError, match=r"'training\.losses\.weights\.ctcc'.*Did you mean 'training\.losses"):
        run_session(project, "sweep", {"sweep": {"space": {"training.losses.weights.ctcc": {"choices": [1.0, 2.0]}}}})
    assert not (project / "data" / "09_experiments" / "tiny").exists()


def test_the_sweep_trains_stage_one_once_and_each_trial_as_kedro_run_would(project: Path, swept: dict):
    assert swept["counts"] == {"COMPLETE": 2}
    assert swept["stage_one_trainings"] == 1
    assert swept["finished_more_than_once"] == [] and swept["failed_configurations"] == []
    trials = _trial_runs(project)
    assert set(trials) == {"baseline", "training.losses.weights.ctc=3.0"}
    (sweep_run_id,) = {run.data.tags["mlflow.parentRunId"] for run in trials.values()}  # nested under one run
    sweep_run = mlflow_client(project).get_run(sweep_run_id)
    assert sweep_run.info.run_name == "sweep" and sweep_run.info.status == "FINISHED"
    for run in trials.values():
        assert run.info.status == "FINISHED"
        assert run.data.params["training.gan_seed"] == "5"
        assert run.data.params["training.epochs"] == "1"
    assert trials["training.losses.weights.ctc=3.0"].data.params["training.losses.weights.ctc"] == "3.0"

    # The baseline trial has the plain run's settings, so it gives the plain run's figures, line by line.
    plain, baseline = _plain_run(project), trials["baseline"]
    assert {key: value for key, value in plain.data.params.items() if key.startswith("training.")} == {
        key: value for key, value in baseline.data.params.items() if key.startswith("training.")
    }
    plain_lines = pd.read_parquet(_artifact(project, plain.info.run_id, "evaluation/samples.parquet"))
    trial_lines = pd.read_parquet(_artifact(project, baseline.info.run_id, "evaluation/samples.parquet"))
    pd.testing.assert_frame_equal(plain_lines, trial_lines)
    assert (
        plain.data.metrics["eval/judge/cer_corpus_restored"] == baseline.data.metrics["eval/judge/cer_corpus_restored"]
    )

    # The objective was read on the valid lines, by an evaluation nested under each trial.
    objective_runs = [run for run in logged_runs(project) if run.data.tags.get("htr.sweep.objective_split") == "valid"]
    assert sorted(run.data.tags["mlflow.parentRunId"] for run in objective_runs) == sorted(
        run.info.run_id for run in trials.values()
    )
    figures = {trial["label"]: trial["figures"] for trial in swept["trials"]}
    for run in objective_runs:
        label = run.data.tags["htr.sweep.label"]
        assert figures[label]["judge_cer"] == pytest.approx(run.data.metrics["eval/judge/cer_corpus_restored"])

    # The sweep ends with the comparison of its trials, logged to its run.
    (comparison_file,) = (project / "data" / "08_reporting" / "comparison_summary.json").glob("*/*.json")
    comparison = json.loads(comparison_file.read_text())
    assert comparison["baseline_run_id"] == baseline.info.run_id
    assert [run["label"] for run in comparison["runs"]] == [
        f"trial {t}, seed 5" for t in sorted(int(run.data.tags["htr.sweep.trial"]) for run in trials.values())
    ]
    artifacts = {item.path for item in mlflow_client(project).list_artifacts(sweep_run.info.run_id, "comparison")}
    assert {"comparison/report.md", "comparison/table.csv", "comparison/tables.tex"} <= artifacts
    # A rerun resumes the finished study: nothing trains again.
    trial_folders = sorted((project / "data" / "09_experiments" / "tiny").glob("trial_*"))
    run_session(project, "sweep")
    assert sorted((project / "data" / "09_experiments" / "tiny").glob("trial_*")) == trial_folders


def test_two_runs_compare_with_a_paired_interval_recomputed_by_hand(project: Path, swept: dict, capsys):
    plain = _plain_run(project).info.run_id
    other = _trial_runs(project)["training.losses.weights.ctc=3.0"].info.run_id
    capsys.readouterr()
    run_session(project, "comparison", {"comparison": {"runs": f"{plain} {other}"}})
    block = capsys.readouterr().out
    assert "Comparison on test (6 lines, read by judge)" in block

    (comparison_run,) = [
        run for run in logged_runs(project) if run.info.run_name == "comparison" and run.info.status == "FINISHED"
    ]
    assert comparison_run.data.tags["htr.compared_run_ids"] == f"{plain},{other}"
    assert mlflow_client(project).get_run(other).data.tags["htr.comparison_run_id"] == comparison_run.info.run_id
    table = pd.read_csv(_artifact(project, comparison_run.info.run_id, "comparison/table.csv"))
    row = table[table["run_id"] == other].iloc[0]

    lines = {
        run_id: pd.read_parquet(_artifact(project, run_id, "evaluation/samples.parquet"))
        .query("recognizer == 'judge'")
        .sort_values("sample_id")
        for run_id in (plain, other)
    }
    count = len(lines[plain])
    indices = np.random.default_rng(4).integers(0, count, size=(300, count))

    def corpus_cer(frame: pd.DataFrame) -> np.ndarray:
        edits = frame["char_edits_restored"].fillna(0).to_numpy(float)
        lengths = frame["char_reference_length"].to_numpy(float)
        return edits[indices].sum(axis=1) / lengths[indices].sum(axis=1)

    resampled = corpus_cer(lines[other]) - corpus_cer(lines[plain])
    low, high = np.quantile(resampled, [0.025, 0.975])
    assert (row["cer_restored_difference_ci_low"], row["cer_restored_difference_ci_high"]) == pytest.approx((low, high))
    assert row["settings_vs_baseline"] == "training.losses.weights.ctc 1.0 -> 3.0"


def test_runs_evaluated_on_other_lines_are_refused_naming_both(project: Path, swept: dict):
    plain = _plain_run(project).info.run_id
    on_valid = next(run for run in logged_runs(project) if run.data.tags.get("htr.sweep.objective_split") == "valid")
    with pytest.raises(UnpairedRunsError) as error:
        run_session(project, "comparison", {"comparison": {"runs": f"{plain} {on_valid.info.run_id}"}})
    assert plain in str(error.value) and on_valid.info.run_id in str(error.value)
    assert "split 'valid' against 'test'" in str(error.value)
