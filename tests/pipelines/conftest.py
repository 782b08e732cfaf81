"""The throw-away project with tiny training parameters that every pipeline test here starts from."""

from pathlib import Path

import pytest
import yaml

from tests.pipelines.test_training_pipeline import _parameters


@pytest.fixture
def training_project(kedro_project: Path) -> Path:
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(_parameters()))
    return kedro_project
