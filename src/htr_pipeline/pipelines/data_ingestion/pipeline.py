from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.data_ingestion import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                nodes.read_configured_sources,
                inputs="params:data",
                outputs=["sample_candidates", "source_rejects"],
                name="read_sources",
            ),
            node(
                nodes.split_samples,
                inputs=["sample_candidates", "params:data"],
                outputs="split_candidates",
                name="assign_splits",
            ),
            node(
                nodes.materialise_samples,
                inputs=["split_candidates", "source_rejects", "params:data"],
                outputs=["line_images", "manifest", "rejects"],
                name="materialise_samples",
            ),
            node(nodes.build_charset, inputs="manifest", outputs="charset", name="build_charset"),
            node(
                nodes.report_dataset,
                inputs=["manifest", "rejects", "charset", "line_images", "params:data"],
                outputs=["dataset_report", "dataset_report_plot", "dataset_gallery", "ingestion_metrics"],
                name="report_dataset",
            ),
        ]
    )
