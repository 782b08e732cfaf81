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

import errno
import os
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.io.core import DatasetError

from htr_pipeline.checkpoints import CheckpointError
from htr_pipeline.config import ConfigError
from htr_pipeline.data.ingestion import TooManyRejectsError
from htr_pipeline.data.real_paper import RealPaperError
from htr_pipeline.data.sources import MissingColumnError, SourceEncodingError, SourceNotFoundError
from htr_pipeline.data.splits import EmptySplitError
from htr_pipeline.datasets.file_folder import ImageFolderSaveError
from htr_pipeline.devices import DeviceUnavailableError
from htr_pipeline.evaluation.decoding import BeamSearchUnavailableError
from htr_pipeline.evaluation.real_scans import RealTestInputError
from htr_pipeline.evaluation.run import EmptyEvaluationSplitError
from htr_pipeline.experiments.runs import ComparisonSelectionError, UnpairedRunsError
from htr_pipeline.experiments.study import SweepStorageError
from htr_pipeline.hooks import MissingInputError, RunSummaryHook
from htr_pipeline.pipelines.diagnostics.nodes import AuditedRunNotFoundError, DiagnosticsFailedError
from htr_pipeline.pipelines.inference.nodes import InferenceInputError
from htr_pipeline.pipelines.sweep.nodes import NothingToCompareError
from htr_pipeline.run_summary import RunWithoutGainError
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
    RealPaperError,
    RealTestInputError,
    ImageFolderSaveError,
    RunWithoutGainError,
    ComparisonSelectionError,
    UnpairedRunsError,
    SweepStorageError,
    NothingToCompareError,
)
"""Errors whose message names the file, line or key and what to do: the trace would only bury it. A new one is
added here, and nowhere else (no error class of the project derives from ``click.ClickException``)."""

FILE_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EROFS})
"""Errors of the disk a dataset is saved to, told in one line like the known errors: disk full, quota, a name
too long, a read-only file system."""

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
        result = context.invoke(kedro_run, **as_current_options(options))
        if RunSummaryHook.last_failure is not None:
            raise RunWithoutGainError(RunSummaryHook.last_failure)
        return result
    except (*KNOWN_ERRORS, DatasetError) as error:
        known = known_error(error)
        if known is None or verbose or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        message = known.args[0] if isinstance(known, KeyError) and known.args else str(known)
        raise click.ClickException(message) from None


def known_error(error: BaseException) -> BaseException | None:
    """``error`` if it is known, or the known error Kedro wrapped while saving or loading a dataset (a
    ``DatasetError`` caused by one, or by a full disk); ``None`` for anything else, whose trace is shown."""
    if isinstance(error, KNOWN_ERRORS):
        return error
    cause = error.__cause__
    if isinstance(error, DatasetError) and isinstance(cause, OSError) and cause.errno in FILE_SYSTEM_ERRNOS:
        return OSError(cause.errno, f"saving or loading a dataset: {cause}")
    if isinstance(error, DatasetError) and cause is not None:
        return known_error(cause)
    return None
