"""htr-pipeline: restore degraded handwritten text lines so they are both clean and readable."""

__version__ = "0.1.0"
