from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.comparison import nodes

COMPARISON_OUTPUTS = [
    "comparison_summary",
    "comparison_report",
    "comparison_table",
    "comparison_latex",
    "comparison_validation_curves",
    "comparison_cer_against_psnr",
]
"""What a comparison writes (the sweep pipeline ends with the same comparison of its trials)."""


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.compare_evaluated_runs,
                inputs="params:comparison",
                outputs=COMPARISON_OUTPUTS,
                name="compare_runs",
            )
        ]
    )
