"""The previous system's report's epochs 17-26 as a metric history: which epoch each criterion picks."""

import io

import pandas as pd

from htr_pipeline.diagnostics.best_model import best_model_report, history_table, plot_metric_history

# ../shared/seed/000_3288bb5c2e97dc80.txt, "Progress Timeline (Epoch 17-26)"; the combined score was only
# printed for some epochs ("-" elsewhere).
PREVIOUS_SYSTEM_EPOCHS = {
    # epoch: (val CER, val PSNR, val SSIM, val WER, combined or None)
    17: (0.0639, 29.10, 0.9824, 0.1179, 25.91),
    18: (0.0719, 28.55, 0.9815, 0.1310, None),
    19: (0.0611, 28.86, 0.9807, 0.1154, None),
    20: (0.0659, 28.51, 0.9801, 0.1213, None),
    21: (0.0590, 29.58, 0.9837, 0.1093, 26.63),
    22: (0.0647, 29.21, 0.9819, 0.1163, None),
    23: (0.0595, 29.41, 0.9838, 0.1137, None),
    24: (0.0631, 29.90, 0.9815, 0.1104, 26.74),
    25: (0.0593, 29.23, 0.9816, 0.1108, None),
    26: (0.0577, 29.39, 0.9839, 0.1086, None),
}


def _previous_system_history() -> pd.DataFrame:
    history = {"val/cer": [], "val/psnr": [], "val/ssim": [], "val/wer": [], "val/combined": []}
    for epoch, (cer, psnr, ssim, wer, combined) in PREVIOUS_SYSTEM_EPOCHS.items():
        for metric, value in zip(history, (cer, psnr, ssim, wer, combined), strict=True):
            if value is not None:
                history[metric].append((epoch, value))
    return history_table(history)


def test_previous_system_history_combined_picks_epoch_24_and_cer_picks_epoch_26():
    report = best_model_report(_previous_system_history(), cer_weight=50.0)
    picked = {choice["metric"]: choice["epoch"] for choice in report.details["choices"]}
    assert picked == {"val/cer": 26, "val/psnr": 24, "val/ssim": 26, "val/combined": 24}
    assert "val/cer picks epoch 26, val/psnr picks epoch 24" in report.details["disagreements"]
    assert report.verdict == "warning"  # no checkpoint folder given, and the criteria disagree
    buffer = io.BytesIO()
    plot_metric_history(_previous_system_history(), cer_weight=50.0).savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000


def test_a_criterion_without_its_checkpoint_is_a_problem():
    # The previous system kept one checkpoint (by the combined score): the best-CER epoch was not kept.
    report = best_model_report(_previous_system_history(), cer_weight=50.0, existing_checkpoints=["best_combined.pt"])
    assert report.verdict == "problem"
    lost = {choice["metric"] for choice in report.details["choices"] if choice["checkpoint_exists"] is False}
    assert lost == {"val/cer", "val/psnr", "val/ssim"}
    kept = ["best_cer.pt", "best_psnr.pt", "best_ssim.pt", "best_combined.pt", "best.pt", "last.pt"]
    assert best_model_report(_previous_system_history(), 50.0, kept).verdict == "warning"


def test_plot_draws_the_degraded_baseline_and_names_each_unit():
    from htr_pipeline.diagnostics.best_model import degraded_baseline

    logged = {"val_degraded/cer": [(0, 0.31)], "val_degraded/psnr": [(0, 14.2)], "val/cer": [(1, 0.2)]}
    baseline = degraded_baseline(logged)
    assert baseline == {"val/cer": 0.31, "val/psnr": 14.2}
    figure = plot_metric_history(_previous_system_history(), cer_weight=50.0, baseline=baseline)
    cer_axes, psnr_axes, ssim_axes, combined_axes = figure.axes
    assert cer_axes.get_ylabel() == "CER (edits / reference characters)"
    assert psnr_axes.get_ylabel() == "PSNR against the clean line (dB)"
    assert combined_axes.get_ylabel() == "PSNR - 50 x CER (dB)"
    assert "degraded input 0.31" in [text.get_text() for text in cer_axes.get_legend().get_texts()]
    assert "degraded input 14.2" in [text.get_text() for text in psnr_axes.get_legend().get_texts()]
    assert not [text.get_text() for text in ssim_axes.get_legend().get_texts() if "degraded" in text.get_text()]
    assert cer_axes.get_title() == "val/cer (lower is better)"


def test_a_one_epoch_history_has_one_whole_epoch_tick():
    table = history_table({"val/cer": [(1, 0.97)], "val/psnr": [(1, 17.2)], "val/ssim": [(1, 0.8)]})
    figure = plot_metric_history(table, cer_weight=50.0)
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == ["1"]


def test_a_run_validated_on_real_pages_gets_a_fifth_criterion_and_its_panel():
    """Run V of the README (4 GAN epochs, stopped after 3): the valid real pages pick epoch 1, the lines epoch 3."""
    history = {
        "val/cer": [(1, 0.661), (2, 0.4624), (3, 0.4462)],
        "val/psnr": [(1, 17.22), (2, 18.52), (3, 19.17)],
        "val/ssim": [(1, 0.78), (2, 0.82), (3, 0.84)],
        "val/page_f_measure": [(1, 87.026), (2, 86.62), (3, 83.728)],
    }
    kept = ["last.pt", "best.pt", "best_cer.pt", "best_psnr.pt", "best_ssim.pt", "best_combined.pt"]
    report = best_model_report(history_table(history), 50.0, [*kept, "best_page_f_measure.pt"])
    picked = {choice["metric"]: choice["epoch"] for choice in report.details["choices"]}
    assert picked == {"val/cer": 3, "val/psnr": 3, "val/ssim": 3, "val/combined": 3, "val/page_f_measure": 1}
    assert "val/cer picks epoch 3, val/page_f_measure picks epoch 1" in report.details["disagreements"]
    lost = best_model_report(history_table(history), 50.0, kept)
    assert any("best_page_f_measure.pt is not in the run's checkpoint folder" in f.message for f in lost.findings)
    figure = plot_metric_history(history_table(history), cer_weight=50.0)
    assert figure.axes[-1].get_ylabel() == "F-measure, valid real pages (%)"
    assert len(figure.axes) == 5
    line_runs = plot_metric_history(history_table({k: v for k, v in history.items() if "page" not in k}), 50.0)
    assert len(line_runs.axes) == 4
