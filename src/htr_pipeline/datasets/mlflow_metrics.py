"""MLflow metrics named as every other metric of the project: ``<prefix>/<name>`` (``ingestion/samples``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kedro.io import DatasetError
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset


class PrefixedMetricsDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's metrics dataset, with ``/`` between prefix and name where kedro-mlflow puts ``.``
    (kedro-mlflow sets the prefix to the dataset's name when the catalog gives none)."""

    def _is_dataset_metric(self, key: str) -> bool:
        return key.startswith(f"{self._prefix}/")

    def _build_args_list_from_metric_item(self, key: str, value: Any) -> Iterator[tuple[str, float, int]]:
        name = f"{self._prefix}/{key}"
        points = [value] if isinstance(value, dict) else value
        if not isinstance(points, list) or not points:
            raise DatasetError(f"metric '{name}': expected {{'value', 'step'}} or a non-empty list of them")
        return ((name, point["value"], point["step"]) for point in points)
