"""Compare evaluated runs with a baseline: each run's figures with intervals, its paired difference to the
baseline, the settings that differ, the spread between seeds of one configuration, and the GAN-HTR protocol.

Everything is computed from the runs' per-line tables (:mod:`.figures`); nothing here reads a store.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from htr_pipeline.experiments.figures import (
    CLEAN,
    DEGRADED,
    HEADLINE_FIGURES,
    RESTORED,
    Interval,
    MissingFigureError,
    Statistic,
    error_rate,
    figure_value,
    level_interval,
    line_resamples,
    paired_difference,
)
from htr_pipeline.experiments.runs import (
    ComparedRun,
    ComparisonSelectionError,
    UnpairedRunsError,
    describe_run,
    pairing_problem,
)
from htr_pipeline.experiments.settings import differing_settings, settings_text
from htr_pipeline.training.recognizer_training import (
    DEGRADED_TRAINED_RECOGNIZER,
    IN_LOOP_RECOGNIZER,
    JUDGE_RECOGNIZER,
)


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


@dataclass(frozen=True)
class RunRow:
    """One run against the baseline."""

    run: ComparedRun
    is_baseline: bool
    paired_with: ComparedRun
    """The baseline run its differences are taken against (with seeds: the baseline run of the same seed)."""
    settings: dict[str, tuple[str, str]]
    """Settings that differ from ``paired_with``'s: ``{key: (baseline value, this run's value)}``."""
    figures: dict[str, Interval | None]
    differences: dict[str, Interval | None]
    """This run minus its baseline, paired over the same lines; empty for the baseline itself."""
    unpaired: str | None = None
    """Why no paired difference exists (only when unpaired runs are reported rather than refused)."""

    @property
    def settings_text(self) -> str:
        return settings_text(self.settings)


@dataclass(frozen=True)
class SeedSpread:
    """One figure of a configuration over its seeds."""

    mean: float
    sd: float | None
    """Sample standard deviation over seeds; None with a single seed."""
    low: float
    high: float


@dataclass(frozen=True)
class ConfigurationRow:
    """A configuration repeated over seeds, against the baseline configuration."""

    configuration: str
    label: str
    runs: list[ComparedRun]
    is_baseline: bool
    figures: dict[str, SeedSpread | None]
    differences: dict[str, Interval | None]
    """Mean over seeds minus the baseline's mean over the same seeds, paired over the same resampled lines."""
    difference_sd: dict[str, float | None]
    """Standard deviation over seeds of the per-seed differences: the training's own spread."""
    unpaired: str | None = None

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]


@dataclass(frozen=True)
class ProtocolRow:
    """One cell line of the GAN-HTR protocol: which lines, read by which recognizer."""

    lines: str
    reader: str
    recognizer: str
    cer: Interval | None
    wer: Interval | None
    note: str | None = None


@dataclass(frozen=True)
class Comparison:
    baseline: ComparedRun
    rows: list[RunRow]
    configurations: list[ConfigurationRow]
    """Empty unless some configuration was run with several seeds."""
    protocol: dict[str, list[ProtocolRow]]
    """The GAN-HTR protocol of each run, by run id."""
    bootstrap: BootstrapSettings
    figures: tuple[Statistic, ...] = HEADLINE_FIGURES
    notes: list[str] = field(default_factory=list)

    @property
    def split(self) -> str:
        return str(self.baseline.summary.get("split"))

    @property
    def lines(self) -> int:
        return len(self.baseline.table())

    @property
    def headline_recognizer(self) -> str:
        return self.baseline.headline_recognizer


def compare_runs(
    runs: Sequence[ComparedRun],
    baseline_run_id: str,
    bootstrap: BootstrapSettings = BootstrapSettings(),
    refuse_unpaired: bool = True,
) -> Comparison:
    """Every run of ``runs`` against the run ``baseline_run_id`` (one of them).

    Runs evaluated on other lines or read by another judge are refused (:class:`UnpairedRunsError`, naming
    both runs); with ``refuse_unpaired=False`` they are listed with their own figures and the reason instead of
    a difference. Runs sharing a ``configuration`` are also summarised over their seeds.
    """
    by_id = {run.run_id: run for run in runs}
    if len(by_id) != len(runs):
        raise ComparisonSelectionError("comparison.runs: a run is listed twice")
    if baseline_run_id not in by_id:
        raise ComparisonSelectionError(
            f"the baseline run {baseline_run_id} is not among the compared runs: {sorted(by_id)}"
        )
    if len(runs) < 2:
        raise ComparisonSelectionError("a comparison needs at least two runs: the baseline and one more")
    repeated = [
        run.run_id
        for index, run in enumerate(runs)
        if run.configuration is not None
        and any((other.configuration, other.seed) == (run.configuration, run.seed) for other in runs[:index])
    ]
    if repeated:
        raise ComparisonSelectionError(f"runs {', '.join(repeated)} repeat a configuration and seed of an earlier run")
    baseline = by_id[baseline_run_id]
    rows = [_run_row(run, _baseline_of_seed(run, baseline, runs), bootstrap, refuse_unpaired) for run in runs]
    rows.sort(key=lambda row: not row.is_baseline)
    return Comparison(
        baseline=baseline,
        rows=rows,
        configurations=_configuration_rows(runs, baseline, bootstrap),
        protocol={run.run_id: protocol_rows(run, bootstrap) for run in runs},
        bootstrap=bootstrap,
    )


def _baseline_of_seed(run: ComparedRun, baseline: ComparedRun, runs: Sequence[ComparedRun]) -> ComparedRun:
    """The baseline configuration's run with ``run``'s seed, when the baseline was repeated over seeds."""
    if baseline.configuration is None:
        return baseline
    same_seed = [
        candidate
        for candidate in runs
        if candidate.configuration == baseline.configuration and candidate.seed == run.seed
    ]
    return same_seed[0] if same_seed else baseline


def _run_row(run: ComparedRun, baseline: ComparedRun, bootstrap: BootstrapSettings, refuse: bool) -> RunRow:
    table = run.table()
    indices = line_resamples(len(table), bootstrap.resamples, bootstrap.seed)
    figures = {figure.name: _level(table, figure, indices, bootstrap.confidence) for figure in HEADLINE_FIGURES}
    is_baseline = run is baseline  # a baseline configuration's run of any seed is its own baseline
    differences: dict[str, Interval | None] = {}
    unpaired = None
    if run is not baseline:
        unpaired = pairing_problem(baseline, run)
        if unpaired is not None and refuse:
            raise UnpairedRunsError(f"Cannot compare line by line: {unpaired}.")
        for figure in HEADLINE_FIGURES:
            differences[figure.name] = (
                None if unpaired else _difference([table], [baseline.table()], figure, indices, bootstrap)
            )
    return RunRow(
        run=run,
        is_baseline=is_baseline,
        paired_with=baseline,
        settings=differing_settings(baseline.params, run.params),
        figures=figures,
        differences=differences,
        unpaired=unpaired,
    )


def _level(table: Any, figure: Statistic, indices: Any, confidence: float) -> Interval | None:
    try:
        return level_interval(table, figure, indices, confidence)
    except MissingFigureError:
        return None


def _difference(tables: list, baseline_tables: list, figure: Statistic, indices: Any, bootstrap: BootstrapSettings):
    try:
        return paired_difference(tables, baseline_tables, figure, indices, bootstrap.confidence)
    except MissingFigureError:
        return None


def _configuration_rows(
    runs: Sequence[ComparedRun], baseline: ComparedRun, bootstrap: BootstrapSettings
) -> list[ConfigurationRow]:
    groups: dict[str, list[ComparedRun]] = {}
    for run in runs:
        if run.configuration is not None:
            groups.setdefault(run.configuration, []).append(run)
    if baseline.configuration is None or not any(len(group) > 1 for group in groups.values()):
        return []
    baseline_runs = groups[baseline.configuration]
    rows = [_configuration_row(name, group, baseline_runs, bootstrap) for name, group in groups.items()]
    rows.sort(key=lambda row: not row.is_baseline)
    return rows


def _configuration_row(
    name: str, runs: list[ComparedRun], baseline_runs: list[ComparedRun], bootstrap: BootstrapSettings
) -> ConfigurationRow:
    runs = sorted(runs, key=lambda run: (run.seed is None, run.seed))
    is_baseline = runs[0].configuration == baseline_runs[0].configuration
    baseline_seeds = {run.seed: run for run in baseline_runs}
    paired = [(run, baseline_seeds[run.seed]) for run in runs if run.seed in baseline_seeds]
    if not paired:  # no seed in common: each side over all its seeds
        paired = [(run, baseline_runs[0]) for run in runs]
    unpaired = next(
        (reason for run, base in paired if run is not base and (reason := pairing_problem(base, run))), None
    )
    figures = {figure.name: _spread([run.table() for run in runs], figure) for figure in HEADLINE_FIGURES}
    differences: dict[str, Interval | None] = {}
    difference_sd: dict[str, float | None] = {}
    if not is_baseline:
        indices = line_resamples(len(runs[0].table()), bootstrap.resamples, bootstrap.seed)
        for figure in HEADLINE_FIGURES:
            ours = [run.table() for run, _ in paired]
            theirs = [base.table() for _, base in paired]
            differences[figure.name] = None if unpaired else _difference(ours, theirs, figure, indices, bootstrap)
            per_seed = _per_seed_differences(ours, theirs, figure)
            difference_sd[figure.name] = statistics.stdev(per_seed) if per_seed and len(per_seed) > 1 else None
    return ConfigurationRow(
        configuration=name,
        label=runs[0].configuration_label or runs[0].label,
        runs=runs,
        is_baseline=is_baseline,
        figures=figures,
        differences=differences,
        difference_sd=difference_sd,
        unpaired=unpaired,
    )


def _spread(tables: list, figure: Statistic) -> SeedSpread | None:
    try:
        values = [figure_value(table, figure) for table in tables]
    except MissingFigureError:
        return None
    return SeedSpread(
        mean=statistics.fmean(values),
        sd=statistics.stdev(values) if len(values) > 1 else None,
        low=min(values),
        high=max(values),
    )


def _per_seed_differences(ours: list, theirs: list, figure: Statistic) -> list[float] | None:
    try:
        return [figure_value(a, figure) - figure_value(b, figure) for a, b in zip(ours, theirs, strict=True)]
    except MissingFigureError:
        return None


# ------------------------------------------------------------------------------------------ GAN-HTR protocol

READER_ROLES = {
    JUDGE_RECOGNIZER: "judge (trained on clean lines; no GAN loss saw it)",
    IN_LOOP_RECOGNIZER: "in-loop recognizer (trained on clean lines; the generator trained through it)",
    DEGRADED_TRAINED_RECOGNIZER: "degraded-trained baseline",
}


def protocol_rows(run: ComparedRun, bootstrap: BootstrapSettings = BootstrapSettings()) -> list[ProtocolRow]:
    """The GAN-HTR protocol of one run (Souibgui et al., "Enhance to read better"): clean and degraded lines read
    by the recognizer trained on clean lines (the headline one), degraded lines read by the degraded-trained
    baseline, restored lines read by the in-loop recognizer and by the judge; CER and WER with intervals."""
    headline = run.headline_recognizer
    cells = [
        ("clean", headline, CLEAN),
        ("degraded", headline, DEGRADED),
        ("degraded", DEGRADED_TRAINED_RECOGNIZER, DEGRADED),
        ("restored", IN_LOOP_RECOGNIZER, RESTORED),
    ]
    if headline != IN_LOOP_RECOGNIZER:
        cells.append(("restored", headline, RESTORED))
    return [_protocol_row(run, lines, recognizer, variant, bootstrap) for lines, recognizer, variant in cells]


def _protocol_row(
    run: ComparedRun, lines: str, recognizer: str, variant: str, bootstrap: BootstrapSettings
) -> ProtocolRow:
    reader = READER_ROLES.get(recognizer, recognizer)
    if recognizer not in run.recognizers:
        note = "not trained: set training.baselines: [degraded_trained]"
        return ProtocolRow(lines, reader, recognizer, None, None, note)
    table = run.table(recognizer)
    indices = line_resamples(len(table), bootstrap.resamples, bootstrap.seed)
    cer = _level(table, error_rate("cer", variant), indices, bootstrap.confidence)
    wer = _level(table, error_rate("wer", variant), indices, bootstrap.confidence)
    return ProtocolRow(lines, reader, recognizer, cer, wer, None if cer is not None else "no readings")


def describe_baseline(comparison: Comparison) -> str:
    """``run 1a2b3c4d (run <id>)``, or for a configuration over seeds ``the configured defaults (trial 0, seed 1;
    trial 1, seed 2)``."""
    baseline = comparison.baseline
    if baseline.configuration is None:
        return describe_run(baseline)
    runs = [row.run.label for row in comparison.rows if row.run.configuration == baseline.configuration]
    label = baseline.configuration_label
    return f"{'the configured defaults' if label == 'baseline' else label} ({'; '.join(runs)})"


def choose_baseline(runs: Sequence[ComparedRun], requested: str | None, sweep_defaults: bool = False) -> str:
    """The baseline's run id: the run ``requested`` names (its evaluation or its training run id); else, for a
    sweep's trials (``sweep_defaults``), the configured defaults' trial of the first seed; else the first run."""
    if requested is not None:
        for run in runs:
            if requested in (run.run_id, run.training_run_id):
                return run.run_id
        listed = ", ".join(run.run_id for run in runs)
        raise ComparisonSelectionError(
            f"comparison.baseline: run {requested} is not among the compared runs ({listed})"
        )
    defaults = [run for run in runs if run.configuration_label == "baseline"] if sweep_defaults else []
    return (sorted(defaults, key=lambda run: (run.seed is None, run.seed))[0] if defaults else runs[0]).run_id
