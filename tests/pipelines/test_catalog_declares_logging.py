"""What goes to MLflow and into the summary block is what the catalog declares, whatever the datasets are called."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.pipeline import Pipeline, node

from htr_pipeline import pipeline_registry
from tests.conftest import small_synthetic_parameters
from tests.pipeline_runs import TINY_TRAINING, logged_runs, mlflow_client, run_session

RENAMED = {"evaluation_summary": "evaluation_figures", "evaluation_report": "evaluation_markdown"}


def _renamed(pipeline: Pipeline, names: dict[str, str]) -> Pipeline:
    """``pipeline`` with its datasets renamed: each node that reads or writes one is rebuilt under the new names."""
    nodes = []
    for original in pipeline.nodes:
        if not set(names) & {*original.inputs, *original.outputs}:
            nodes.append(original)
            continue
        outputs = [names.get(name, name) for name in original.outputs]
        nodes.append(
            node(
                original.func,
                inputs=[names.get(name, name) for name in original.inputs],
                outputs=outputs[0] if len(outputs) == 1 else outputs,
                name=original.name,
            )
        )
    return Pipeline(nodes)


@pytest.mark.slow
def test_renamed_evaluation_outputs_are_still_logged_and_summarised(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    parameters = small_synthetic_parameters(train=8, valid=4, test=4)
    parameters["training"] = {
        **TINY_TRAINING,
        "epochs": 1,
        "recognizer_pretraining": TINY_TRAINING["recognizer_pretraining"] | {"epochs": 1},
    }
    parameters["evaluation"] = {"bootstrap_resamples": 100, "log_models": False}
    (kedro_project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(parameters))
    catalog_file = kedro_project / "conf" / "base" / "catalog.yml"
    catalog = yaml.safe_load(catalog_file.read_text())
    for old, new in RENAMED.items():
        catalog[new] = catalog.pop(old)
    catalog_file.write_text(yaml.safe_dump(catalog, sort_keys=False))
    registered = pipeline_registry.register_pipelines
    monkeypatch.setattr(
        pipeline_registry,
        "register_pipelines",
        lambda: {name: _renamed(pipeline, RENAMED) for name, pipeline in registered().items()},
    )

    run_session(kedro_project)

    (run,) = logged_runs(kedro_project)
    logged = mlflow_client(kedro_project).get_run(run.info.run_id).data
    assert "eval/judge/cer_corpus_restored" in logged.metrics
    assert logged.params["evaluation.confidence_level"] == "0.95"
    assert logged.tags["htr.evaluated_run_id"] == run.info.run_id
    artifacts = {item.path for item in mlflow_client(kedro_project).list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/summary.json", "evaluation/report.md"} <= artifacts
    block = capsys.readouterr().out
    block = block[block.index("Run summary") :]
    assert "Evaluation on test (4 lines), read by judge, 95% intervals:" in block
    assert "  evaluation_markdown          data/08_reporting/evaluation_report.md/" in block
    assert "evaluation_report " not in block
