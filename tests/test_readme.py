"""The README's configuration reference names every key of the schema, and its commands are what CI runs."""

from pathlib import Path

import pytest

from htr_pipeline.config import (
    SPLIT_NAMES,
    ComparisonConfig,
    DataConfig,
    DiagnosticsConfig,
    EvaluationConfig,
    InferenceConfig,
    SweepConfig,
    TrainingConfig,
    _field_paths,
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
