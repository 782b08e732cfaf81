"""The project's pipelines; ``__default__`` is the main job the README's first command runs."""

from kedro.pipeline import Pipeline

from htr_pipeline.pipelines import comparison, data_ingestion, diagnostics, evaluation, inference, sweep, training

DEFAULT_PIPELINES: tuple[str, ...] = ("data_ingestion", "training", "evaluation")
"""Named pipelines that make up ``__default__``, in run order (also used to name MLflow runs)."""


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {
        "data_ingestion": data_ingestion.create_pipeline(),
        "training": training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
        "diagnostics": diagnostics.create_pipeline(),
        "inference": inference.create_pipeline(),
        "comparison": comparison.create_pipeline(),
        "sweep": sweep.create_pipeline(),
    }
    pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT_PIPELINES), Pipeline([]))
    return pipelines
