from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.comparison.pipeline import COMPARISON_OUTPUTS
from htr_pipeline.pipelines.sweep import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.check_sweep_settings,
                inputs=["params:data", "params:training", "params:evaluation", "params:sweep"],
                outputs="sweep_base_config",
                name="check_sweep_settings",
            ),
            node(
                nodes.run_sweep,
                inputs=[
                    "manifest",
                    "line_images",
                    "charset",
                    "sweep_work_folder",
                    "sweep_base_config",
                    "params:sweep",
                ],
                outputs=["sweep_summary", "sweep_trials"],
                name="run_sweep",
            ),
            node(
                nodes.compare_sweep_trials,
                inputs=["sweep_summary", "params:comparison"],
                outputs=COMPARISON_OUTPUTS,
                name="compare_sweep_trials",
            ),
        ]
    )
