"""The charset as a Kedro dataset: a JSON file on disk, a :class:`~htr_pipeline.charset.Charset` in every node."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kedro.io.core import DatasetError
from kedro_datasets._typing import JSONPreview
from kedro_datasets.json import JSONDataset

from htr_pipeline.charset import Charset


class CharsetDataset(JSONDataset):
    """Loads the charset JSON as a :class:`Charset` (its blank index and normalisation checked).

    Saves a :class:`Charset` as :meth:`Charset.to_dict`, or the charset document the ingestion builds: that stored
    form plus what the data set says about it (``missing_by_split``), checked to hold a charset before it is
    written. kedro-viz previews the JSON as it is on disk.
    """

    def load(self) -> Charset:
        document = super().load()
        try:
            return Charset.from_dict(document)
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{self._filepath} holds no charset of this project: {error}") from None

    def save(self, data: Charset | Mapping[str, Any]) -> None:
        if isinstance(data, Charset):
            document: Mapping[str, Any] = data.to_dict()
        else:
            document = data
            try:
                Charset.from_dict(document)
            except (ValueError, KeyError, TypeError) as error:
                raise DatasetError(f"refused to write {self._filepath}: it would hold no charset: {error}") from None
        super().save(dict(document))

    def preview(self) -> JSONPreview:
        return JSONPreview(json.dumps(JSONDataset.load(self)))
