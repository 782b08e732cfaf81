"""Restore and read a folder of your own scans, lines or whole pages."""

from htr_pipeline.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
