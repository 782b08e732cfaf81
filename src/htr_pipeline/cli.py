"""``kedro run`` for this project: Kedro's own command, with the project's known errors told in one line.

Kedro loads the ``cli`` group of this module and lets its commands replace its own. ``run`` takes every option
of Kedro's ``run`` (``--pipelines``, ``--params``, ...) and calls it (``--pipeline``, which Kedro 1.7
deprecates, is passed on as ``--pipelines``); an error this project raises on purpose, with a message that says
what to fix (one of :data:`KNOWN_ERRORS`, the one list of them: the library and the nodes raise plain
exceptions, and only this command turns them into one line), is printed as ``Error: <message>`` with exit status
1 instead of a stack trace. ``--verbose`` (``-v``, as Kedro's other commands spell it) or ``HTR_TRACEBACK=1``
shows the full trace.
"""

from __future__ import annotations

import os
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from htr_pipeline.checkpoints import CheckpointError
from htr_pipeline.config import ConfigError
from htr_pipeline.data.ingestion import TooManyRejectsError
from htr_pipeline.data.sources import MissingColumnError, SourceEncodingError, SourceNotFoundError
from htr_pipeline.data.splits import EmptySplitError
from htr_pipeline.devices import DeviceUnavailableError
from htr_pipeline.evaluation.decoding import BeamSearchUnavailableError
from htr_pipeline.evaluation.run import EmptyEvaluationSplitError
from htr_pipeline.experiments.runs import ComparisonSelectionError, UnpairedRunsError
from htr_pipeline.experiments.study import SweepStorageError
from htr_pipeline.hooks import MissingInputError
from htr_pipeline.pipelines.diagnostics.nodes import AuditedRunNotFoundError, DiagnosticsFailedError
from htr_pipeline.pipelines.inference.nodes import InferenceInputError
from htr_pipeline.pipelines.sweep.nodes import NothingToCompareError
from htr_pipeline.tracking import RunNotFoundError
from htr_pipeline.training.ctc_feasibility import InfeasibleSamplesError
from htr_pipeline.training.recognizer_training import RecognizerDoesNotReadError

KNOWN_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    SourceNotFoundError,
    SourceEncodingError,
    MissingColumnError,
    TooManyRejectsError,
    EmptySplitError,
    CheckpointError,
    InfeasibleSamplesError,
    RecognizerDoesNotReadError,
    DeviceUnavailableError,
    EmptyEvaluationSplitError,
    BeamSearchUnavailableError,
    RunNotFoundError,
    MissingInputError,
    InferenceInputError,
    AuditedRunNotFoundError,
    DiagnosticsFailedError,
    ComparisonSelectionError,
    UnpairedRunsError,
    SweepStorageError,
    NothingToCompareError,
)
"""Errors whose message names the file, line or key and what to do: the trace would only bury it. A new one is
added here, and nowhere else (no error class of the project derives from ``click.ClickException``)."""

TRACEBACK_VARIABLE = "HTR_TRACEBACK"


def as_current_options(options: dict[str, Any]) -> dict[str, Any]:
    """``--pipeline=x`` (the flag our users type, deprecated by Kedro 1.7) spelt as ``--pipelines=x``, so it
    keeps working without a deprecation warning; given together, Kedro's own error still says to pick one."""
    if options.get("pipeline") and not options.get("pipelines"):
        return {**options, "pipeline": None, "pipelines": [options["pipeline"]]}
    return options


@click.group(name="htr_pipeline")
def cli() -> None:
    """Project-specific commands of htr_pipeline."""


@cli.command(name="run", params=list(kedro_run.params), help=kedro_run.help)
@click.option(
    "--verbose", "-v", is_flag=True, help=f"Show the full stack trace of any error (or set {TRACEBACK_VARIABLE}=1)."
)
@click.pass_context
def run(context: click.Context, verbose: bool, **options: Any) -> Any:
    try:
        return context.invoke(kedro_run, **as_current_options(options))
    except KNOWN_ERRORS as error:
        if verbose or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise click.ClickException(message) from None
