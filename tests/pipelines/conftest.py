"""The throw-away project with tiny training parameters that every pipeline test here starts from."""

from pathlib import Path

import pytest
import yaml

from tests.pipeline_runs import tiny_parameters


@pytest.fixture
def training_project(kedro_project: Path) -> Path:
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(tiny_parameters()))
    return kedro_project
