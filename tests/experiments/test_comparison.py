"""Comparing evaluated runs: paired bootstrap differences recomputed by hand, refusals that name both runs, seeds
summarised per configuration, the GAN-HTR protocol, and the tables a person reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htr_pipeline.experiments.comparison import BootstrapSettings, choose_baseline, compare_runs, protocol_rows
from htr_pipeline.experiments.figures import CER_RESTORED, PSNR_RESTORED, figure_value
from htr_pipeline.experiments.runs import UnpairedRunsError
from htr_pipeline.experiments.settings import differing_settings
from htr_pipeline.experiments.writers import (
    comparison_frame,
    comparison_summary,
    latex_tables,
    latex_text,
    markdown_report,
)
from htr_pipeline.metrics import corpus_rate
from htr_pipeline.run_summary import comparison_lines
from tests.experiments.conftest import REFERENCES, evaluated_run

BOOTSTRAP = BootstrapSettings(resamples=500, seed=3, confidence=0.9)


def _by_hand_cer_difference(run, baseline, resamples: int, seed: int, confidence: float):
    """The paired interval of corpus CER (run - baseline) as the README describes it, with numpy alone."""
    ours, theirs = run.table(), baseline.table()
    assert list(ours["sample_id"]) == list(theirs["sample_id"])
    lines = len(ours)
    indices = np.random.default_rng(seed).integers(0, lines, size=(resamples, lines))
    edits_ours = ours["char_edits_restored"].to_numpy(dtype=float)
    edits_theirs = theirs["char_edits_restored"].to_numpy(dtype=float)
    lengths = ours["char_reference_length"].to_numpy(dtype=float)
    resampled = edits_ours[indices].sum(1) / lengths[indices].sum(1) - edits_theirs[indices].sum(1) / lengths[
        indices
    ].sum(1)
    estimate = edits_ours.sum() / lengths.sum() - edits_theirs.sum() / lengths.sum()
    tail = (1 - confidence) / 2
    return estimate, *np.quantile(resampled, [tail, 1 - tail])


def test_the_paired_cer_interval_is_the_one_recomputed_by_hand_from_both_tables():
    baseline, better = evaluated_run("base", restored_every=4), evaluated_run("better", restored_every=9)
    comparison = compare_runs([baseline, better], "base", BOOTSTRAP)
    row = next(row for row in comparison.rows if row.run.run_id == "better")
    difference = row.differences[CER_RESTORED.name]
    estimate, low, high = _by_hand_cer_difference(better, baseline, 500, 3, 0.9)
    assert (difference.estimate, difference.ci_low, difference.ci_high) == pytest.approx((estimate, low, high))
    assert difference.estimate < 0 and difference.excludes_zero
    # The run's own figure is the corpus rate of its table, as the evaluation summary has it.
    table = better.table()
    assert row.figures[CER_RESTORED.name].estimate == pytest.approx(
        corpus_rate(table["char_edits_restored"], table["char_reference_length"])
    )
    assert row.figures[CER_RESTORED.name].estimate == pytest.approx(better.summary["judge"]["cer_corpus_restored"])
    assert row.figures[PSNR_RESTORED.name].estimate == pytest.approx(better.summary["judge"]["psnr_db_mean_restored"])


def test_a_difference_within_noise_does_not_exclude_zero():
    baseline, same = evaluated_run("base", restored_every=5), evaluated_run("same", restored_every=5)
    row = compare_runs([baseline, same], "base", BOOTSTRAP).rows[1]
    assert row.differences[CER_RESTORED.name].estimate == 0.0
    assert not row.differences[CER_RESTORED.name].excludes_zero


def test_runs_on_different_test_lines_are_refused_naming_both():
    baseline = evaluated_run("base-run", restored_every=4)
    other_lines = evaluated_run("other-run", restored_every=4, references=[*REFERENCES[:-1], "another line"])
    with pytest.raises(UnpairedRunsError) as error:
        compare_runs([baseline, other_lines], "base-run", BOOTSTRAP)
    message = str(error.value)
    assert "other-run" in message and "base-run" in message
    assert "different test lines" in message and "other reference texts" in message

    other_split = evaluated_run("valid-run", restored_every=4, split="valid")
    with pytest.raises(UnpairedRunsError, match=r"valid-run.*base-run.*split 'valid' against 'test'"):
        compare_runs([baseline, other_split], "base-run", BOOTSTRAP)

    fewer = evaluated_run("fewer-run", restored_every=4, references=REFERENCES[:5])
    with pytest.raises(UnpairedRunsError, match=r"3 only in base-run \(test-005, test-006, test-007\)"):
        compare_runs([baseline, fewer], "base-run", BOOTSTRAP)


def test_runs_read_by_different_judges_are_refused_naming_both():
    baseline = evaluated_run("base-run", restored_every=4)
    other_judge = evaluated_run("judged-run", restored_every=4, judge_every_clean=7)
    with pytest.raises(UnpairedRunsError) as error:
        compare_runs([baseline, other_judge], "base-run", BOOTSTRAP)
    assert "judged-run" in str(error.value) and "base-run" in str(error.value)
    assert "different judges" in str(error.value)

    no_judge = evaluated_run("in-loop-run", restored_every=4, recognizers=("in_loop",))
    with pytest.raises(UnpairedRunsError, match=r"by its in_loop recognizer.*by its judge recognizer"):
        compare_runs([baseline, no_judge], "base-run", BOOTSTRAP)


def test_unpaired_runs_can_be_listed_with_their_reason_instead_of_a_difference():
    baseline = evaluated_run("base-run", restored_every=4)
    other_judge = evaluated_run("judged-run", restored_every=4, judge_every_clean=7)
    comparison = compare_runs([baseline, other_judge], "base-run", BOOTSTRAP, refuse_unpaired=False)
    row = comparison.rows[1]
    assert row.unpaired is not None and "different judges" in row.unpaired
    assert row.differences[CER_RESTORED.name] is None
    assert row.figures[CER_RESTORED.name] is not None
    assert "not paired" in markdown_report(comparison)


def test_settings_that_differ_come_from_the_logged_params():
    baseline = evaluated_run("base", 4, params={"training.losses.weights.ctc": "1.0", "training.gan_seed": "None"})
    other = evaluated_run("other", 6, params={"training.losses.weights.ctc": "3.0", "training.gan_seed": "None"})
    row = compare_runs([baseline, other], "base", BOOTSTRAP).rows[1]
    assert row.settings == {"training.losses.weights.ctc": ("1.0", "3.0")}
    assert row.settings_text == "training.losses.weights.ctc 1.0 -> 3.0"
    assert differing_settings({"a": "1"}, {"a": "1", "b": "2"}) == {"b": ("(not logged)", "2")}


def _sweep_runs():
    """Two configurations x two seeds: the baseline's restored lines read with more errors."""
    runs = []
    for seed, offset in ((1, 0), (2, 1)):
        runs.append(
            evaluated_run(f"base-s{seed}", 4 + offset, 0.0, None, 0, REFERENCES, "test", "{}", "baseline", seed)
        )
        runs.append(
            evaluated_run(
                f"ctc3-s{seed}",
                8 + offset,
                1.0,
                {"training.losses.weights.ctc": "3.0"},
                0,
                REFERENCES,
                "test",
                '{"ctc": 3}',
                "ctc=3.0",
                seed,
            )
        )
    return runs


def test_seeds_are_summarised_per_configuration_beside_the_bootstrap_interval():
    runs = _sweep_runs()
    assert choose_baseline(runs, None, sweep_defaults=True) == "base-s1"
    assert choose_baseline(runs[1:], None) == "ctc3-s1"  # named runs: the first is the baseline
    comparison = compare_runs(runs, "base-s1", BOOTSTRAP)
    # Each run is paired with the baseline run of its own seed.
    paired = {row.run.run_id: row.paired_with.run_id for row in comparison.rows}
    assert paired == {"base-s1": "base-s1", "base-s2": "base-s2", "ctc3-s1": "base-s1", "ctc3-s2": "base-s2"}
    baseline_row, ctc_row = comparison.configurations
    assert baseline_row.is_baseline and baseline_row.seeds == [1, 2]
    per_seed = [
        figure_value(runs[index + 1].table(), CER_RESTORED) - figure_value(runs[index].table(), CER_RESTORED)
        for index in (0, 2)
    ]
    assert ctc_row.differences[CER_RESTORED.name].estimate == pytest.approx(np.mean(per_seed))
    assert ctc_row.difference_sd[CER_RESTORED.name] == pytest.approx(np.std(per_seed, ddof=1))
    spread = ctc_row.figures[CER_RESTORED.name]
    values = [figure_value(runs[index].table(), CER_RESTORED) for index in (1, 3)]
    assert (spread.mean, spread.low, spread.high) == pytest.approx((np.mean(values), min(values), max(values)))
    report = markdown_report(comparison)
    assert "## Configurations over seeds" in report and "seeds sd" in report


def test_the_gan_htr_protocol_reads_each_kind_of_line_with_each_recognizer():
    run = evaluated_run("run", restored_every=6)
    rows = protocol_rows(run, BOOTSTRAP)
    cells = [(row.lines, row.recognizer) for row in rows]
    assert cells == [
        ("clean", "judge"),
        ("degraded", "judge"),
        ("degraded", "degraded_trained"),
        ("restored", "in_loop"),
        ("restored", "judge"),
    ]
    assert rows[0].cer.estimate == 0.0  # the judge reads clean lines perfectly here
    assert rows[1].cer.estimate == pytest.approx(run.summary["judge"]["cer_corpus_degraded"])
    assert rows[2].cer.estimate == pytest.approx(run.summary["degraded_trained"]["cer_corpus_degraded"])
    assert all(row.cer.ci_low <= row.cer.estimate <= row.cer.ci_high for row in rows)

    without_baseline = protocol_rows(evaluated_run("run", 6, recognizers=("judge", "in_loop")), BOOTSTRAP)
    assert without_baseline[2].cer is None and "training.baselines" in without_baseline[2].note


def test_tables_for_people_papers_and_spreadsheets():
    runs = _sweep_runs()
    comparison = compare_runs(runs, "base-s1", BOOTSTRAP)
    frame = comparison_frame(comparison)
    assert list(frame["run_id"]) == ["base-s1", "base-s2", "ctc3-s1", "ctc3-s2"]
    assert {"cer_restored", "cer_restored_difference_ci_low", "psnr_db_restored_difference_excludes_zero"} <= set(
        frame.columns
    )
    assert frame.loc[frame["run_id"] == "base-s1", "cer_restored_difference"].isna().all()
    summary = comparison_summary(comparison)
    pd.io.json.ujson_dumps(summary)  # plain JSON types only
    latex = latex_tables(comparison)
    assert latex.count("\\toprule") == 3 and latex.count("\\bottomrule") == 3
    assert "ctc=3.0" in latex
    assert latex_text("in_loop & 50% ± -> x") == r"in\_loop \& 50\% $\pm$ $\rightarrow$ x"
    assert all(ord(character) < 128 for character in latex), "pdflatex with default fonts needs ASCII"
    assert "$\\Delta$" in latex and "\\textsuperscript{\\dag}" in latex
    lines = comparison_lines(summary)
    assert lines[0].startswith(
        "Comparison on test (8 lines, read by judge) against the configured defaults (base-s1; base-s2)"
    )
    assert any("ctc3-s1" in line and "Δ" in line for line in lines)


def test_the_baseline_must_be_one_of_the_runs():
    runs = [evaluated_run("a", 4), evaluated_run("b", 5)]
    assert choose_baseline(runs, "train-b") == "b"  # a training run's id names its evaluation
    with pytest.raises(ValueError, match=r"comparison\.baseline: run z is not among"):
        choose_baseline(runs, "z")
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs(runs[:1], "a")
