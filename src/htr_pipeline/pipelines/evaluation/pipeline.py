from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.evaluation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.load_models_to_evaluate,
                inputs=["training_summary", "in_loop_recognizer", "params:evaluation"],
                outputs="evaluated_models",
                name="load_models_to_evaluate",
            ),
            node(
                nodes.evaluate_checkpoint,
                inputs=["manifest", "line_images", "charset", "evaluated_models", "params:evaluation"],
                outputs=[
                    "evaluation_samples",
                    "evaluation_summary",
                    "evaluation_report",
                    "evaluation_plots",
                    "evaluation_gallery",
                ],
                name="evaluate_checkpoint",
            ),
            node(
                nodes.choose_models_to_log,
                inputs=["evaluated_models", "manifest", "evaluation_summary", "params:evaluation"],
                outputs="mlflow_models",
                name="log_evaluated_models",
            ),
        ]
    )
