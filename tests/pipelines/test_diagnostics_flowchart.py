"""The diagnostics flowchart as kedro-viz draws it, from kedro-viz's own graph data (what ``kedro viz`` serves
at ``/api/pipelines/diagnostics``), without a browser.

kedro-viz opens every modular pipeline collapsed: what shows is the root's children and, of each collapsed group,
its inputs and outputs. A group's outputs are the datasets its nodes write that no node inside it reads, whatever
they are called (``ModularPipelinesRepository.populate_tree``): a report nothing in ``diagnostics`` read would hang
off the collapsed group, one box per report.
"""

from __future__ import annotations

import pytest
from kedro_viz.data_access.managers import DataAccessManager
from kedro_viz.integrations.kedro.data_loader import load_data
from kedro_viz.server import populate_data

from htr_pipeline.diagnostics.registry import AUDITS
from htr_pipeline.pipelines.diagnostics.pipeline import NAMESPACE, report_datasets, section_dataset
from tests.conftest import PROJECT_ROOT


class Flowchart:
    """One registered pipeline's graph as kedro-viz's API returns it: node names by id, the modular pipelines."""

    def __init__(self, graph: DataAccessManager, pipeline: str) -> None:
        nodes = graph.get_nodes_for_registered_pipeline(pipeline)
        self.name = {node.id: node.name for node in nodes}
        self.type = {node.id: node.type for node in nodes}
        self.groups = graph.create_modular_pipelines_tree_for_registered_pipeline(pipeline)

    def names(self, ids: set[str]) -> set[str]:
        """The names of ``ids``, parameters left out (kedro-viz hides them until asked)."""
        return {self.name.get(id_, id_) for id_ in ids if self.type.get(id_) != "parameters"}

    def view(self, expanded: tuple[str, ...] = ()) -> set[str]:
        """What kedro-viz draws with the groups ``expanded`` (its ``modularPipeline.visible`` state and its
        ``getNodeDisabled`` selector): the children of the root and of each expanded group, and each group drawn
        collapsed with its inputs and outputs."""
        shown = {child.id for group in ("__root__", *expanded) for child in self.groups[group].children}
        shown -= set(expanded)
        for group in [id_ for id_ in shown if id_ in self.groups]:
            shown |= set(self.groups[group].inputs) | set(self.groups[group].outputs)
        return self.names(shown)

    def children(self, group: str) -> set[str]:
        return self.names({child.id for child in self.groups[group].children})

    def outputs(self, group: str) -> set[str]:
        return self.names(set(self.groups[group].outputs))


@pytest.fixture(scope="module")
def flowcharts() -> dict[str, Flowchart]:
    catalog, pipelines, node_extras = load_data(PROJECT_ROOT, env="base")
    graph = DataAccessManager()
    populate_data(graph, catalog, pipelines, node_extras)
    return {name: Flowchart(graph, name) for name in ("diagnostics", "__default__")}


def test_the_diagnostics_flowchart_opens_on_its_inputs_one_group_and_the_summary(flowcharts: dict[str, Flowchart]):
    assert flowcharts["diagnostics"].view() == {
        "manifest",
        "line_images",
        "charset",
        NAMESPACE,
        "diagnostics_summary_markdown",
    }


def test_expanding_diagnostics_shows_one_group_per_audit_and_no_report(flowcharts: dict[str, Flowchart]):
    shown = flowcharts["diagnostics"].view(expanded=(NAMESPACE,))
    assert {f"{NAMESPACE}.{audit.name}" for audit in AUDITS} <= shown
    assert {f"{NAMESPACE}.{audit.name}.section" for audit in AUDITS} <= shown
    assert not {dataset for audit in AUDITS for dataset in report_datasets(audit)} & shown
    assert len(shown) == 3 + 6 + 2 * len(AUDITS) + 4  # inputs, the run's steps, audits and sections, the summary's


@pytest.mark.parametrize("audit", AUDITS, ids=lambda audit: audit.name)
def test_each_audit_is_a_group_inside_diagnostics_holding_its_own_reports(flowcharts: dict[str, Flowchart], audit):
    flowchart = flowcharts["diagnostics"]
    group = f"{NAMESPACE}.{audit.name}"
    assert group in flowchart.children(NAMESPACE)
    assert set(report_datasets(audit)) <= flowchart.children(group)
    assert flowchart.outputs(group) == {section_dataset(audit)}
    assert set(report_datasets(audit)) <= flowchart.view(expanded=(NAMESPACE, group))


def test_the_main_flowchart_keeps_its_top_level(flowcharts: dict[str, Flowchart]):
    shown = flowcharts["__default__"].view()
    assert {"manifest", "charset", "evaluation_report"} <= shown
    assert not {name for name in shown if name.startswith(NAMESPACE)}
