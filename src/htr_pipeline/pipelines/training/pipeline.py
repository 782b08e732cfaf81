from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.training import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.train_recognizer,
                inputs=["manifest", "line_images", "charset", "params:training"],
                outputs="in_loop_recognizer",
                name="pretrain_recognizer",
            ),
            node(
                nodes.train_reference_recognizers,
                inputs=["manifest", "line_images", "charset", "params:training"],
                outputs="reference_recognizers",
                name="train_reference_recognizers",
            ),
            node(
                nodes.train_restoration_gan,
                inputs=[
                    "manifest",
                    "line_images",
                    "charset",
                    "in_loop_recognizer",
                    "reference_recognizers",
                    "training_run_folder",
                    "params:data",
                    "params:training",
                ],
                outputs="training_summary",
                name="train_gan",
            ),
        ]
    )
