"""Audits of a training run: config vs logged params, CTC lengths, label convention, charset coverage,
gradient spikes, best-model criterion, split hygiene."""

from htr_pipeline.pipelines.diagnostics.pipeline import create_pipeline

__all__ = ["create_pipeline"]
