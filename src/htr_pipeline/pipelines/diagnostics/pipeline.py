from kedro.pipeline import Node, Pipeline, node, pipeline

from htr_pipeline.diagnostics.registry import AUDIT_INPUTS, AUDITS, Audit, AuditInput
from htr_pipeline.pipelines.diagnostics import nodes

AUDIT_INPUT_DATASETS: dict[AuditInput, str] = {
    "run": "audited_run",
    "checkpoint": "audited_checkpoint",
    "readings": "recognizer_readings",
    "manifest": "manifest",
    "line_images": "line_images",
    "charset": "charset",
    "data": "params:data",
    "training": "params:training",
    "diagnostics": "params:diagnostics",
}
"""The catalog entry behind each input an audit can read."""
if set(AUDIT_INPUT_DATASETS) != set(AUDIT_INPUTS):
    raise TypeError(f"audit inputs without a catalog entry: {sorted(set(AUDIT_INPUTS) - set(AUDIT_INPUT_DATASETS))}")

NAMESPACE = "diagnostics"
"""Every node's namespace, one level deeper per audit (``diagnostics.config_audit``), and each audit's datasets'
(``diagnostics.config_audit.json``): kedro-viz draws one group per audit inside one ``diagnostics`` group."""


def report_datasets(audit: Audit) -> list[str]:
    """``diagnostics.<audit>.json`` and ``.markdown``, and ``.plot`` where the audit draws one (catalog factories)."""
    names = [f"{NAMESPACE}.{audit.name}.json", f"{NAMESPACE}.{audit.name}.markdown"]
    return [*names, f"{NAMESPACE}.{audit.name}.plot"] if audit.plot else names


def section_dataset(audit: Audit) -> str:
    """``diagnostics.<audit>.section``: the audit's part of the summary, in memory."""
    return f"{NAMESPACE}.{audit.name}.section"


def _audit_nodes(audit: Audit) -> list[Node]:
    """The audit, then its reports read back as its section of the summary. kedro-viz draws a dataset outside a
    collapsed group unless a node of the group reads it, whatever its name: read in the audit's group, the reports
    show when that group is expanded, and the flowchart opens on the run's inputs, ``diagnostics`` and the summary."""
    inputs = {"run": AUDIT_INPUT_DATASETS["run"]} | {name: AUDIT_INPUT_DATASETS[name] for name in audit.inputs}
    namespace = f"{NAMESPACE}.{audit.name}"
    return [
        node(
            nodes.audit_node(audit), inputs, report_datasets(audit), name=audit.function.__name__, namespace=namespace
        ),
        node(
            nodes.summarise_audit,
            report_datasets(audit),
            section_dataset(audit),
            name="summarise_audit",
            namespace=namespace,
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    """Find the run and its checkpoint, read clean lines with its recognizer, then one node per registered audit
    (:data:`htr_pipeline.diagnostics.registry.AUDITS`, read when the pipeline is built) with its section of the
    summary, and the summary."""
    return pipeline(
        [
            node(
                nodes.find_training_run,
                "params:diagnostics",
                "audited_run",
                name="find_training_run",
                namespace=NAMESPACE,
            ),
            node(
                nodes.load_run_checkpoint,
                ["audited_run", "params:diagnostics"],
                "audited_checkpoint",
                name="load_run_checkpoint",
                namespace=NAMESPACE,
            ),
            node(
                nodes.read_lines_with_recognizer,
                ["audited_checkpoint", "manifest", "line_images", "params:diagnostics"],
                "recognizer_readings",
                name="read_lines_with_recognizer",
                namespace=NAMESPACE,
            ),
            *(audit_node for audit in AUDITS for audit_node in _audit_nodes(audit)),
            node(
                nodes.summarise_diagnostics,
                ["audited_run", *(section_dataset(audit) for audit in AUDITS)],
                ["diagnostics_summary_json", "diagnostics_summary_markdown"],
                name="summarise_diagnostics",
                namespace=NAMESPACE,
            ),
            node(
                nodes.fail_on_verdicts,
                ["diagnostics_summary_json", "params:diagnostics"],
                None,
                name="fail_on_verdicts",
                namespace=NAMESPACE,
            ),
        ]
    )
