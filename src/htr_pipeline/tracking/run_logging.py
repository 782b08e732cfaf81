"""What goes into an MLflow run while it runs: the training loop's live metrics (the training library itself never
imports MLflow), and the outputs the catalog declares (``datasets/logged.py`` hands them here).

Metric names are ``<stage>/<name>`` throughout (``val/cer``, ``ingestion/samples_train``,
``eval/judge/cer_corpus_restored``); the generator's output is "restored" in every name, as in the data.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import Metric
from PIL import Image

from htr_pipeline.config import nested_items


class MlflowTracker:
    """Logs epoch metrics to one MLflow run, also when another run is active (a resumed training logs into
    the run it continues), and from a spawned data-parallel worker, which is why the store is named."""

    def __init__(self, run_id: str, tracking_uri: str):
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        timestamp_ms = int(time.time() * 1000)
        logged = [Metric(name, float(value), timestamp_ms, step) for name, value in metrics.items()]
        mlflow.MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=logged)

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.MlflowClient(self.tracking_uri).log_dict(self.run_id, dict(values), artifact_file)


def current_tracking_uri() -> str:
    """The store this session tracks into (``conf/base/mlflow.yml``)."""
    return mlflow.get_tracking_uri()


def tracker_for_current_store() -> Callable[[str], MlflowTracker]:
    """A picklable ``run_id -> tracker`` for the store this session tracks into."""
    return functools.partial(MlflowTracker, tracking_uri=current_tracking_uri())


def active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: training runs inside `kedro run`, which kedro-mlflow tracks")
    return run.info.run_id


def active_run_id_or_none() -> str | None:
    """The run a ``kedro run`` logs into; None outside one (a notebook saving through the catalog)."""
    run = mlflow.active_run()
    return None if run is None else run.info.run_id


def log_parameters(parameters: Mapping[str, str]) -> None:
    """Flattened parameters (:func:`htr_pipeline.config.flatten_as_logged`) into the active run."""
    mlflow.log_params(dict(parameters))


TABLE_WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    ".parquet": lambda table, path: table.to_parquet(path, index=False),
    ".csv": lambda table, path: table.to_csv(path, index=False),
}
"""How a table is written as an artifact, by the suffix of its name."""


def log_artifact(data: Any, artifact_file: str) -> None:
    """``data`` as the file ``artifact_file`` of the active run: a mapping as JSON, a string as text, a Pillow
    image or a matplotlib figure as the image the name's suffix says, a table as the Parquet or CSV file it says."""
    if isinstance(data, pd.DataFrame):
        _log_table(data, PurePosixPath(artifact_file))
    elif isinstance(data, Mapping):
        mlflow.log_dict(dict(data), artifact_file)
    elif isinstance(data, str):
        mlflow.log_text(data, artifact_file)
    elif isinstance(data, Image.Image):
        mlflow.log_image(data, artifact_file=artifact_file)
    elif isinstance(data, Figure):
        mlflow.log_figure(data, artifact_file)
    else:
        raise TypeError(
            f"artifact '{artifact_file}': no way to log a {type(data).__name__} (a mapping, a string, "
            "a Pillow image, a matplotlib figure or a table)"
        )


def _log_table(table: pd.DataFrame, artifact_file: PurePosixPath) -> None:
    writer = TABLE_WRITERS.get(artifact_file.suffix)
    if writer is None:
        suffixes = " or ".join(TABLE_WRITERS)
        raise ValueError(f"artifact '{artifact_file}': a table is logged as {suffixes}, not '{artifact_file.suffix}'")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / artifact_file.name
        writer(table, path)
        mlflow.log_artifact(str(path), str(artifact_file.parent) if artifact_file.parent.parts else None)


@dataclass(frozen=True)
class LoggedNumbers:
    """The numbers of one output as its run records them: metrics (step 0) and the settings they were made with."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def log_numbers(numbers: LoggedNumbers) -> None:
    if numbers.metrics:
        mlflow.log_metrics(numbers.metrics)
    if numbers.params:
        mlflow.log_params(numbers.params)


EVALUATION_SETTINGS = ("bootstrap_resamples", "bootstrap_seed", "confidence_level")
"""Numbers of an evaluation summary that say how it was computed: params, not metrics."""


def evaluation_numbers(summary: Mapping[str, Any]) -> LoggedNumbers:
    """``eval/<recognizer>/<figure>`` for every number of the summary but its settings (each under the summary's
    own key), and the bootstrap settings of the headline recognizer's figures (every recognizer shares them) as
    ``evaluation.<setting>`` params."""
    metrics = {
        f"eval/{key}": value
        for key, value in flat_numbers(summary).items()
        if key.rsplit("/", 1)[-1] not in EVALUATION_SETTINGS
    }
    figures = summary[summary["headline_recognizer"]]
    return LoggedNumbers(metrics, {f"evaluation.{name}": figures[name] for name in EVALUATION_SETTINGS})


def inference_numbers(summary: Mapping[str, Any]) -> LoggedNumbers:
    """The mean DIBCO scores against ground truth as ``inference/<score>``, and the throughput when measured."""
    metrics = {f"inference/{key}": value for key, value in flat_numbers(summary["mean_scores"]).items()}
    if summary["images_per_second"] is not None:
        metrics["inference/images_per_second"] = summary["images_per_second"]
    return LoggedNumbers(metrics)


def sweep_numbers(summary: Mapping[str, Any]) -> LoggedNumbers:
    """The study's trials by state as ``sweep/trials_<state>`` (``sweep/trials_complete``), as this worker left it."""
    return LoggedNumbers({f"sweep/trials_{state.lower()}": count for state, count in summary["counts"].items()})


OUTPUT_NUMBERS: dict[str, Callable[[Mapping[str, Any]], LoggedNumbers]] = {
    "evaluation": evaluation_numbers,
    "inference": inference_numbers,
    "sweep": sweep_numbers,
}
"""How the numbers of a summary become metrics and params, by the name a catalog entry's ``mlflow.numbers``
gives: a new kind of summary is one function plus one line here."""


def flat_numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number of a nested summary, keyed by its ``/``-joined path."""
    return {
        path: float(value)
        for path, value in nested_items(values, separator="/")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def log_metric_points(prefix: str, points: Mapping[str, Any]) -> None:
    """``{name: {"value", "step"}}`` (or a list of such points per name, kedro-mlflow's metrics form) as
    ``<prefix>/<name>`` into the active run."""
    timestamp_ms = int(time.time() * 1000)
    metrics = []
    for name, value in points.items():
        listed = [value] if isinstance(value, Mapping) else value
        if not isinstance(listed, list) or not listed:
            raise ValueError(f"metric '{prefix}/{name}': expected {{'value', 'step'}} or a non-empty list of them")
        metrics += [
            Metric(f"{prefix}/{name}", float(point["value"]), timestamp_ms, int(point["step"])) for point in listed
        ]
    mlflow.MlflowClient().log_batch(active_run_id(), metrics=metrics)


def read_metric_points(prefix: str) -> dict[str, list[dict[str, float]]]:
    """The metrics ``<prefix>/<name>`` of the active run, as ``{name: [{"value", "step"}, ...]}``."""
    client = mlflow.MlflowClient()
    run_id = active_run_id()
    names = [key for key in client.get_run(run_id).data.metrics if key.startswith(f"{prefix}/")]
    return {
        name.removeprefix(f"{prefix}/"): [
            {"value": point.value, "step": point.step} for point in client.get_metric_history(run_id, name)
        ]
        for name in sorted(names)
    }
