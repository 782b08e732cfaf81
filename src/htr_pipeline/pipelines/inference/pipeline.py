from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.inference import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.restore_folder,
                inputs=["training_summary", "params:inference"],
                outputs=["inference_outputs", "inference_results", "inference_summary"],
                name="restore_folder",
            )
        ]
    )
