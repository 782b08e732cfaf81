from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.inference import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.restore_folder,
                inputs=["training_summary", "params:inference"],
                outputs="inference_outputs",
                name="restore_folder",
            ),
            node(
                nodes.summarise_folder,
                inputs=["inference_outputs", "params:inference"],
                outputs=["inference_results", "inference_summary"],
                name="summarise_inference",
            ),
        ]
    )
