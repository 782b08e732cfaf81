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
                    "evaluation_plots",
                    "evaluation_gallery",
                    "evaluation_report",  # after the images: its HTML copy in MLflow inlines them
                ],
                name="evaluate_checkpoint",
            ),
            node(
                nodes.choose_models_to_log,
                inputs=["evaluated_models", "manifest", "evaluation_summary", "params:evaluation"],
                outputs="mlflow_models",
                name="log_evaluated_models",
            ),
            node(
                nodes.evaluate_on_real_scans,
                inputs=["evaluated_models", "params:data", "params:evaluation"],
                outputs=[
                    "real_test_summary",
                    "real_test_pages",
                    "real_test_lines",
                    "real_test_pictures",
                    "real_test_restored_pages",
                    "real_test_metrics",
                ],
                name="evaluate_on_real_scans",
            ),
        ]
    )
