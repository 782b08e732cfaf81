"""One set of defaults: conf/base sets every key of the schema, each to the schema's own default.

conf/base is what the main job runs, so a schema default that differs from it is a value no documented run uses;
a key base leaves out is a value a reader of base cannot see. Data sources are the one exception to "the same
value": an entry of ``data.sources`` is a data set of its own (the laptop's synthetic lines), not a default, so
base sets every key of it but chooses its own values (``line_chars``, ``lines_per_split``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from htr_pipeline.config import (
    ProjectConfig,
    SourceSettings,
    _nested_models,
    effective_parameters,
    flatten_as_logged,
    tag_of,
    validate_parameters,
)
from tests.conftest import PROJECT_ROOT

LEFT_TO_FOLLOW = {
    "training.judge.recognizer.width_downsampling": "follows training.recognizer.width_downsampling unless given, "
    "so an environment that changes the in-loop recognizer's keeps the judge reading the same padded lines",
}
"""Keys base leaves out on purpose, each with the reason: setting them would change what they mean."""


def base_parameters() -> dict[str, Any]:
    """``conf/base/parameters*.yml`` merged as Kedro merges the files of one environment (top-level keys)."""
    parameters: dict[str, Any] = {}
    for path in sorted((PROJECT_ROOT / "conf" / "base").glob("parameters*.yml")):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            assert key not in parameters, f"{path.name}: '{key}' is also set in another parameters file of base"
            parameters[key] = value
    return parameters


def _model_for(annotation: Any, value: Mapping[str, Any]) -> type[BaseModel] | None:
    """The settings class a mapping of the parameters is validated by: its source kind, its variant, or the one
    model its field allows."""
    candidates = [model for model, _ in _nested_models(annotation)]
    if "kind" in value and all(issubclass(model, SourceSettings) for model in candidates):
        return next(model for model in candidates if model.kind_name() == value["kind"])
    if "variant" in value and len(candidates) > 1:
        return next(model for model in candidates if tag_of(model) == value["variant"])
    return candidates[0] if len(candidates) == 1 else None


def keys_left_unset(model: type[BaseModel], values: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Every key of ``model`` (and of each sub-model ``values`` sets to a mapping) that ``values`` does not set."""
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        if name not in values:
            yield key
            continue
        value = values[name]
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and (nested := _model_for(field.annotation, item)) is not None:
                yield from keys_left_unset(nested, item, f"{key}[{index}]" if isinstance(value, list) else key)


def test_base_sets_every_key_of_the_schema():
    unset = set(keys_left_unset(ProjectConfig, base_parameters()))
    assert unset == set(LEFT_TO_FOLLOW), f"keys conf/base/parameters.yml does not set: {sorted(unset)}"


def _effective(parameters: Mapping[str, Any]) -> dict[str, str]:
    return flatten_as_logged(effective_parameters(validate_parameters(parameters)))


def _schema_defaults(base: Mapping[str, Any]) -> dict[str, str]:
    """The effective config when only base's sources and its example sweep are given: every other key takes the
    schema's default."""
    return _effective({"data": {"sources": base["data"]["sources"]}, "sweep": base["sweep"]})


def test_base_values_are_the_schema_defaults():
    base = base_parameters()
    as_base_sets_them, by_default = _effective(base), _schema_defaults(base)
    differences = {
        key: (value, by_default.get(key, "(absent)"))
        for key, value in as_base_sets_them.items()
        if by_default.get(key) != value
    }
    assert as_base_sets_them.keys() == by_default.keys()
    assert differences == {}, f"conf/base value vs schema default: {differences}"


def test_the_test_sees_a_key_base_leaves_out_and_a_value_that_differs():
    base = base_parameters()
    del base["training"]["speed"]["compile"]
    assert "training.speed.compile" in set(keys_left_unset(ProjectConfig, base))
    base = base_parameters()
    base["training"]["optimizer"]["lr_generator"] = 0.0002
    key = "training.optimizer.lr_generator"
    assert _effective(base)[key] != _schema_defaults(base)[key]
