"""The pipeline tests' small project with tiny training parameters, for the fault tests that train."""

from tests.pipelines.conftest import training_project

__all__ = ["training_project"]
