"""The README's configuration reference names every key of the schema and no other, with the schema's defaults;
its test command is what CI runs."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from htr_pipeline.config import (
    SPLIT_NAMES,
    ComparisonConfig,
    DataConfig,
    Degradations,
    DiagnosticsConfig,
    EvaluationConfig,
    InferenceConfig,
    ProjectConfig,
    SweepConfig,
    TrainingConfig,
    _field_paths,
    _nested_models,
    effective_parameters,
    source_settings_by_kind,
    validate_parameters,
)

ROOT = Path(__file__).resolve().parents[1]


def _documented_name(path: tuple[str, ...]) -> str:
    """How the reference names a key: full path, source keys relative to the source, splits by their parent."""
    parts = [part for part in path if part != "[]"]
    if parts[-1] in SPLIT_NAMES:
        parts = parts[:-1]
    if len(parts) > 2 and parts[1] == "degradations":
        return "data.degradations.<kind>." + parts[3] if len(parts) > 3 else parts[2]
    if len(parts) > 2 and parts[1] == "sources":
        return ".".join(parts[2:])
    return ".".join(parts)


def test_every_data_key_is_documented():
    readme = ROOT.joinpath("README.md").read_text()
    for path in _field_paths(DataConfig, ("data",)):
        name = _documented_name(path)
        assert f"`{name}`" in readme, f"{'.'.join(path)} is missing from the README's configuration reference"


def test_ci_runs_the_readme_test_command():
    readme = ROOT.joinpath("README.md").read_text()
    ci = ROOT.joinpath(".ci", "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme


@pytest.mark.parametrize(
    ("model", "section"),
    [
        (TrainingConfig, "training"),
        (EvaluationConfig, "evaluation"),
        (DiagnosticsConfig, "diagnostics"),
        (InferenceConfig, "inference"),
        (ComparisonConfig, "comparison"),
        (SweepConfig, "sweep"),
    ],
)
def test_every_training_evaluation_and_diagnostics_key_is_documented(model, section):
    readme = ROOT.joinpath("README.md").read_text()
    for path in _field_paths(model, (section,)):
        name = ".".join(path)
        documented = f"`{name}`" in readme or f"`{name}." in readme  # a section is documented by its keys
        assert documented, f"{name} is missing from the README's configuration reference"


def _readme_lines_starting(prefix: str) -> list[str]:
    readme = ROOT.joinpath("README.md").read_text()
    return [line.split("  #")[0].strip() for line in readme.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["notebook", "lab"])
def test_the_readme_jupyter_commands_start_a_server(interface: str, tmp_path: Path):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    (command,) = [line for line in _readme_lines_starting(".venv/bin/kedro jupyter notebook") if line]
    comment = ROOT.joinpath("README.md").read_text().split(command, 1)[1].splitlines()[0]
    typed = command if interface == "notebook" else re.search(r"\.venv/bin/kedro jupyter lab", comment).group(0)
    kedro = Path(sys.executable).parent / "kedro"
    arguments = [str(kedro), *typed.split()[1:], "--no-browser", "--port=0", "--ServerApp.token=''"]
    arguments += ["--allow-root"] if os.geteuid() == 0 else []  # Jupyter refuses root (CI containers) without it
    # Jupyter's own folders (and the kernel spec Kedro installs) in a temporary place, not the user's home.
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    environment |= {"JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "run")}
    # A session of its own: kedro starts Jupyter as a child, and the whole group is stopped at the end.
    server = subprocess.Popen(
        arguments,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            line = server.stdout.readline()
            output.append(line)
            if "http://127.0.0.1:" in line or "http://localhost:" in line:
                break
        assert any("http://" in line for line in output), "".join(output)[-3000:]
        assert (tmp_path / "data" / "kernels" / "kedro_htr_pipeline").is_dir()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# ------------------------------------------------------------------------- the reference's stated defaults

REQUIRED, ON, SEE_BELOW = "(required)", "(on)", "see below"
"""Defaults the reference states in words: a key without a default, a section on by default (its keys follow),
and the degradations, whose defaults are listed in the paragraph below their table."""

PROSE_DEFAULTS = {
    "data.split_fractions": lambda default: ", ".join(f"{split} {share}" for split, share in default.items()),
    "training.judge.recognizer": lambda default: (
        f"conv {default['conv_channels']}, LSTM {default['lstm_hidden']}, dropout {default['dropout']}"
    ),
}
"""Defaults written as a phrase, each with how the phrase is made from the schema's default."""


def _reference() -> str:
    readme = ROOT.joinpath("README.md").read_text()
    return readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]


def _reference_rows() -> Iterator[tuple[str, str | None, str]]:
    """``(key, kinds or None, stated default)`` of every row of the reference's tables."""
    columns: list[str] = []
    for line in _reference().splitlines():
        if not line.startswith("|"):
            columns = []
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not columns:
            columns = cells
        elif not set(line) <= set("|- "):
            row = dict(zip(columns, cells, strict=False))
            yield row["key"].strip("`"), row.get("kinds"), row["default"]


def _stated(text: str) -> Any:
    return yaml.safe_load(text.replace("`", ""))


def _default_of(path: str) -> Any:
    """The schema's default at ``path``: the value in the config every key defaults in, else (under a section that
    is off by default, or a variant that is not the default one) the field default of the model that has it;
    ``REQUIRED`` for a key without one. A key the schema lacks fails."""
    if path == "data.sources":  # the one key every parameters file must give
        return _field_default(ProjectConfig, path.split("."))
    value: Any = effective_parameters(validate_parameters({"data": {"sources": [MINIMAL_SOURCE]}}))
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            break
        value = value[part]
    else:
        return value
    return _field_default(ProjectConfig, path.split("."))


def _field_default(model: type[BaseModel], parts: list[str]) -> Any:
    field = model.model_fields.get(parts[0])
    assert field is not None, f"{parts[0]} is documented but {model.__name__} has no such key"
    if len(parts) == 1:
        if field.is_required():
            return REQUIRED
        default = field.get_default(call_default_factory=True)
        return _plain(default)
    owners = [nested for nested, _ in _nested_models(field.annotation) if parts[1] in nested.model_fields]
    assert owners, f"{'.'.join(parts)} is documented but the schema has no such key"
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):  # a section whose default is an instance with values of its own
        value: Any = default.model_dump(mode="json")
        for part in parts[1:]:
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return value
    return _field_default(owners[0], parts[1:])


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


MINIMAL_SOURCE = {"kind": "synthetic", "lines_per_split": {"train": 1, "valid": 1, "test": 1}}


def _agrees(path: str, stated: str, default: Any) -> bool:
    if stated == REQUIRED:
        return default == REQUIRED
    if stated == ON:
        return isinstance(default, dict)
    if path in PROSE_DEFAULTS:
        return stated == PROSE_DEFAULTS[path](default)
    return _stated(stated) == default


def test_every_documented_key_is_in_the_schema_with_its_default():
    wrong = []
    for key, kinds, stated in _reference_rows():
        if kinds is not None or stated == SEE_BELOW:
            continue
        default = _default_of(key)
        if not _agrees(key, stated, default):
            wrong.append(f"{key}: README says {stated}, the schema {default}")
    assert wrong == []


def test_every_documented_source_key_is_in_its_kinds_with_its_default():
    settings = source_settings_by_kind()
    wrong = []
    for key, kinds, stated in _reference_rows():
        if kinds is None:
            continue
        listed = set(settings) if kinds == "all" else {kind.strip() for kind in kinds.split(",")}
        having = {kind for kind, model in settings.items() if key.split(".")[0] in model.model_fields}
        if listed != having:
            wrong.append(f"{key}: README lists the kinds {sorted(listed)}, the schema has it in {sorted(having)}")
        for kind in sorted(listed & having):
            default = _field_default(settings[kind], key.split("."))
            if key == "kind":
                continue  # each kind's own tag: the row lists the kinds instead
            if key == "name":
                assert stated == "the kind" and default == kind, f"name of {kind}: defaults to {default}"
                continue
            if not _agrees(key, stated, default):
                wrong.append(f"{key} ({kind}): README says {stated}, the schema {default}")
    assert wrong == []


def test_the_degradation_defaults_are_as_stated():
    paragraph = _reference().split("Degradation kinds, applied in this order", 1)[1].split("\n\n", 1)[0]
    stated = {
        kind: {"probability": float(probability), "strength": [float(low), float(high)]}
        for kind, probability, low, high in re.findall(r"`(\w+)` \(([\d.]+),\s+\[([\d.]+),\s+([\d.]+)\]\)", paragraph)
    }
    defaults = Degradations().model_dump(mode="json")
    assert list(stated) == list(defaults)  # in the order they are applied
    assert stated == defaults


def test_a_wrong_default_and_an_unknown_key_are_found():
    assert not _agrees("training.epochs", "10", _default_of("training.epochs"))
    with pytest.raises(AssertionError, match="has no such key"):
        _default_of("training.optimizer.lr_generater")
