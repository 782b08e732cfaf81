"""The closing block of a run: figures of the pipelines that ran, and loud warnings for a model that failed."""

from htr_pipeline.run_summary import RunResults, mlflow_run_url, run_summary_lines

TRAINING = {
    "epochs_run": 2,
    "stopped_early": False,
    "best_epoch_per_metric": {"val/cer": 2, "val/psnr": 1},
    "best_value_per_metric": {"val/cer": 0.1234, "val/psnr": 21.5},
    "checkpoint_folder": "data/06_models/gan_checkpoints/v/gan_checkpoints",
}


def _evaluation(cer_restored: float, psnr_gain: float, cer_clean: float = 0.05) -> dict:
    interval = {"estimate": 0.3 - cer_restored, "ci_low": 0.25 - cer_restored, "ci_high": 0.35 - cer_restored}
    return {
        "split": "test",
        "headline_recognizer": "judge",
        "judge": {
            "lines": 40,
            "confidence_level": 0.95,
            "generator_evaluated": True,
            "cer_corpus_degraded": 0.3,
            "cer_corpus_restored": cer_restored,
            "cer_corpus_clean": cer_clean,
            "cer_reduction": interval,
            "psnr_db_mean_degraded": 18.0,
            "psnr_db_mean_restored": 18.0 + psnr_gain,
            "psnr_gain_db": {"estimate": psnr_gain, "ci_low": psnr_gain - 1, "ci_high": psnr_gain + 1},
        },
    }


def _warnings(results: RunResults) -> list[str]:
    return [line for line in run_summary_lines(results) if line.startswith("WARNING")]


def test_a_good_run_shows_its_figures_outputs_and_mlflow_run_without_warnings():
    lines = run_summary_lines(
        RunResults(
            training=TRAINING,
            evaluation=_evaluation(cer_restored=0.1, psnr_gain=6.0),
            outputs=[("evaluation_report", "data/08_reporting/evaluation_report.md/v/evaluation_report.md")],
            mlflow_run_id="abc123",
            mlflow_ui_command="mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000",
            mlflow_run_url=mlflow_run_url("127.0.0.1", 5000, "1", "abc123"),
        )
    )
    text = "\n".join(lines)
    assert "Training: 2 epochs; best val CER 0.1234 (epoch 2); best val PSNR 21.50 dB (epoch 1)" in text
    assert "CER degraded 0.3000 -> restored 0.1000 (clean 0.0500); reduction 0.2000 [0.1500, 0.2500]" in text
    assert "PSNR degraded 18.00 dB -> restored 24.00 dB; gain 6.00 [5.00, 7.00] dB" in text
    assert "data/08_reporting/evaluation_report.md/v/evaluation_report.md" in text
    assert (
        "MLflow run abc123: start the UI with `mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000`" in text
    )
    assert "then open http://127.0.0.1:5000/#/experiments/1/runs/abc123?workflowType=machine_learning" in text
    assert not _warnings(RunResults(training=TRAINING, evaluation=_evaluation(cer_restored=0.1, psnr_gain=6.0)))


def test_no_gain_a_blind_recognizer_and_a_problem_verdict_are_warnings():
    diagnostics = {
        "run_id": "abc",
        "verdict": "problem",
        "audits": [
            {"audit": "config_audit", "verdict": "ok", "headline": "all applied"},
            {"audit": "recognizer_readability", "verdict": "problem", "headline": "reads nothing"},
        ],
    }
    blind = {**TRAINING, "best_value_per_metric": {"val/cer": 1.0, "val/psnr": 12.0}}
    warnings = _warnings(
        RunResults(
            training=blind,
            evaluation=_evaluation(cer_restored=0.3, psnr_gain=-0.5, cer_clean=1.0),
            diagnostics=diagnostics,
        )
    )
    assert warnings == [
        "WARNING: the recognizer reads (almost) nothing on restored validation lines: best val CER 1.0000",
        "WARNING: the judge recognizer reads (almost) nothing even on clean lines: CER 1.0000",
        "WARNING: restored lines are not read better than degraded ones: CER reduction 0.0000 [-0.0500, 0.0500]",
        "WARNING: restored images are not closer to the clean ones: PSNR gain -0.50 [-1.50, 0.50] dB",
        "WARNING: diagnostics: recognizer_readability is a problem: reads nothing",
    ]


def test_ingestion_counts_lines_per_split_and_rejects():
    report = {
        "samples": 36,
        "samples_per_split": {"train": 24, "valid": 6, "test": 6},
        "rejects": 2,
        "charset_size": 34,
    }
    assert "Data: 36 lines (6 test / 24 train / 6 valid), 2 rejected, charset 34" in run_summary_lines(
        RunResults(data=report)
    )


def _inference(restored_f_measure: float, restored_drd: float) -> dict:
    # The shape inference_summary.json has; the figures of the 3 DIBCO 2009 scans read by the synthetic-trained
    # default model (F-measure 89.48 -> 65.27, DRD 3.82 -> 18.89).
    return {
        "inputs": 3,
        "lines": 2,
        "pages": 1,
        "with_ground_truth": 3,
        "mean_scores": {
            "restored_f_measure": restored_f_measure,
            "restored_pseudo_f_measure": restored_f_measure,
            "restored_psnr_db": 19.5,
            "restored_drd": restored_drd,
            "degraded_f_measure": 89.48,
            "degraded_pseudo_f_measure": 89.48,
            "degraded_psnr_db": 19.26,
            "degraded_drd": 3.82,
        },
    }


def test_inference_with_ground_truth_shows_input_and_restored_scores_and_warns_when_worse():
    worse = run_summary_lines(RunResults(inference=_inference(restored_f_measure=65.27, restored_drd=18.89)))
    assert "  F-measure         input 89.48 -> restored 65.27 (mean over images with ground truth)" in worse
    assert [line for line in worse if line.startswith("WARNING")] == [
        "WARNING: the restored images score worse against the ground truth than the inputs: "
        "F-measure 89.48 -> 65.27; pseudo F-measure 89.48 -> 65.27; DRD 3.82 -> 18.89"
    ]
    better = RunResults(inference=_inference(restored_f_measure=93.0, restored_drd=2.5))
    assert _warnings(better) == []
    without_truth = {key: value for key, value in _inference(65.27, 18.89).items() if key != "mean_scores"}
    assert _warnings(RunResults(inference=without_truth)) == []


def _real_test(f_degraded: float, f_restored: float, reduction: float) -> dict:
    gain = {
        "estimate": f_restored - f_degraded,
        "ci_low": f_restored - f_degraded - 1,
        "ci_high": f_restored - f_degraded + 1,
    }
    pages = {
        key: {
            "degraded": f_degraded,
            "restored": f_restored,
            "gain": gain,
            "pages_worse": ["2011-PR1"] if gain["estimate"] < 0 else [],
        }
        for key in ("f_measure", "pseudo_f_measure", "psnr_db", "drd")
    }
    figures = {
        "cer_corpus_raw": 0.9,
        "cer_corpus_restored": 0.9 - reduction,
        "cer_reduction": {"estimate": reduction, "ci_low": reduction - 0.05, "ci_high": reduction + 0.05},
    }
    return {
        "configured": True,
        "confidence_level": 0.95,
        "pages": {"pages": 16, "binarisation": "otsu", **pages},
        "lines": {"lines": 260, "headline_recognizer": "judge", "judge": figures},
    }


def test_the_real_test_shows_its_figures_and_warns_when_restoration_hurts():
    helped = run_summary_lines(RunResults(real_test=_real_test(86.86, 90.0, 0.2)))
    assert "Real test (no training saw it), 95% intervals:" in helped
    assert any(
        line.startswith("  16 pages, binarised by otsu alike: F-measure 86.86 -> 90.00, gain 3.14") for line in helped
    )
    assert "  260 lines, read by judge: CER raw 0.9000 -> restored 0.7000; reduction 0.2000 [0.1500, 0.2500]" in helped
    assert not [line for line in helped if line.startswith("WARNING")]

    hurt = run_summary_lines(RunResults(real_test=_real_test(86.86, 78.71, -0.1)))
    warnings = [line for line in hurt if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: restored real pages score worse against their ground truth: F-measure 86.86 -> 78.71 "
        "(1 of 16 pages worse)",
        "WARNING: restored real lines are not read better than raw ones: CER reduction -0.1000 [-0.1500, -0.0500]",
    ]
    assert run_summary_lines(RunResults(real_test={"configured": False, "note": "..."})) == run_summary_lines(
        RunResults()
    )


def test_a_run_without_gain_fails_unless_the_setting_expects_none():
    from htr_pipeline.run_summary import run_failure

    worse = RunResults(inference=_inference(restored_f_measure=65.27, restored_drd=18.89))
    failure = run_failure(worse, evaluation_expects_gain=True, inference_expects_gain=True)
    assert failure is not None and failure.startswith(
        "the run ended without a gain over its input: the restored images score worse against the ground truth "
        "than the inputs: F-measure 89.48 -> 65.27"
    )
    assert failure.endswith("set inference.expect_gain: false for a smoke test or ablation that expects none)")
    assert run_failure(worse, evaluation_expects_gain=True, inference_expects_gain=False) is None
    better = RunResults(inference=_inference(restored_f_measure=93.0, restored_drd=2.5))
    assert run_failure(better, evaluation_expects_gain=True, inference_expects_gain=True) is None


def test_flagged_readings_and_skipped_comparisons_are_told():
    inference = {
        **_inference(restored_f_measure=93.0, restored_drd=2.5),
        "lines": 5,
        "readings_flagged": 5,
        "flagged_readings": [{"file": "a.png", "reading": "sissssssigsiissss", "why": "13 of its 17 symbols are 's'"}],
        "ground_truth_skipped": [{"file": "b.png", "reason": "b_gt.png: ground truth is 10 x 10 px"}],
    }
    lines = run_summary_lines(RunResults(inference=inference))
    assert "  no comparison for b.png: b_gt.png: ground truth is 10 x 10 px" in lines
    assert _warnings(RunResults(inference=inference)) == [
        "WARNING: 5 of 5 line readings look like nothing useful (e.g. a.png: 'sissssssigsiissss', 13 of its 17 "
        "symbols are 's'); the checkpoint's recognizer does not read these lines: train on yours (README, inference)"
    ]


def test_a_run_validated_on_real_pages_shows_its_best_page_f_measure_and_one_without_shows_nothing():
    with_pages = {
        **TRAINING,
        "best_epoch_per_metric": {**TRAINING["best_epoch_per_metric"], "val/page_f_measure": 1},
        "best_value_per_metric": {**TRAINING["best_value_per_metric"], "val/page_f_measure": 88.4567},
    }
    (line,) = [line for line in run_summary_lines(RunResults(training=with_pages)) if line.startswith("Training")]
    assert line.endswith("best val PSNR 21.50 dB (epoch 1); best val page F-measure 88.46 (epoch 1)")
    without = {**TRAINING, "best_value_per_metric": {**TRAINING["best_value_per_metric"], "val/page_f_measure": None}}
    (line,) = [line for line in run_summary_lines(RunResults(training=without)) if line.startswith("Training")]
    assert "page" not in line


def test_valid_real_pages_restored_worse_than_their_scans_at_every_epoch_is_a_warning():
    def training(best: float) -> dict:
        return {
            **TRAINING,
            "best_epoch_per_metric": {**TRAINING["best_epoch_per_metric"], "val/page_f_measure": 1},
            "best_value_per_metric": {**TRAINING["best_value_per_metric"], "val/page_f_measure": best},
            "validation_pages": ["dibco:2009-H02", "dibco:2010-H08"],
            "validation_pages_f_measure_scans": 86.063,
        }

    (line,) = [line for line in run_summary_lines(RunResults(training=training(71.563))) if line.startswith("Train")]
    assert line.endswith("best val page F-measure 71.56 (epoch 1) against 86.06 for the scans")
    assert _warnings(RunResults(training=training(71.563))) == [
        "WARNING: restoration makes the valid split's real pages worse at every epoch: best val page F-measure 71.56 "
        "against 86.06 for the scans (dibco:2009-H02, dibco:2010-H08); runs that differ only by training.gan_seed "
        "can differ this much (README: Choosing a model on real pages): train another seed"
    ]
    assert not _warnings(RunResults(training=training(87.026)))
