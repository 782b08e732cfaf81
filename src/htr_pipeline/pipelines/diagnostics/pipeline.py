from kedro.pipeline import Pipeline, node, pipeline

from htr_pipeline.pipelines.diagnostics import nodes

AUDITS = (
    "config_audit",
    "ctc_length_report",
    "label_convention",
    "charset_coverage",
    "gradient_spikes",
    "best_model",
    "split_hygiene",
    "recognizer_readability",
)
"""Each audit saves ``diagnostics_<audit>_json`` and ``_markdown`` (and ``_plot`` where a picture says more)."""


def _report(audit: str, plot: bool = True) -> list[str]:
    names = [f"diagnostics_{audit}_json", f"diagnostics_{audit}_markdown"]
    return [*names, f"diagnostics_{audit}_plot"] if plot else names


NAMESPACE = "diagnostics"
"""Every node's namespace, one level deeper per audit (``diagnostics.config_audit``): kedro-viz collapses the
27 report datasets into one group per audit. Only node names carry it (``diagnostics.audit_config``); dataset
names stay as the catalog spells them."""


def create_pipeline(**kwargs) -> Pipeline:
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
            node(
                nodes.audit_config,
                ["audited_run", "audited_checkpoint", "params:data", "params:training"],
                _report("config_audit", plot=False),
                name="audit_config",
                namespace=f"{NAMESPACE}.config_audit",
            ),
            node(
                nodes.audit_ctc_lengths,
                ["audited_run", "audited_checkpoint", "recognizer_readings", "manifest"],
                _report("ctc_length_report"),
                name="audit_ctc_lengths",
                namespace=f"{NAMESPACE}.ctc_length_report",
            ),
            node(
                nodes.audit_label_convention,
                ["audited_run", "audited_checkpoint", "recognizer_readings", "params:diagnostics"],
                _report("label_convention", plot=False),
                name="audit_label_convention",
                namespace=f"{NAMESPACE}.label_convention",
            ),
            node(
                nodes.audit_charset_coverage,
                ["audited_run", "manifest", "charset", "params:diagnostics"],
                _report("charset_coverage"),
                name="audit_charset_coverage",
                namespace=f"{NAMESPACE}.charset_coverage",
            ),
            node(
                nodes.audit_gradient_spikes,
                ["audited_run", "audited_checkpoint", "params:diagnostics"],
                _report("gradient_spikes"),
                name="audit_gradient_spikes",
                namespace=f"{NAMESPACE}.gradient_spikes",
            ),
            node(
                nodes.audit_best_model,
                ["audited_run", "audited_checkpoint"],
                _report("best_model"),
                name="audit_best_model",
                namespace=f"{NAMESPACE}.best_model",
            ),
            node(
                nodes.audit_split_hygiene,
                ["audited_run", "manifest", "line_images", "params:diagnostics"],
                _report("split_hygiene"),
                name="audit_split_hygiene",
                namespace=f"{NAMESPACE}.split_hygiene",
            ),
            node(
                nodes.audit_recognizer_readability,
                ["audited_run", "params:diagnostics", "params:training"],
                _report("recognizer_readability", plot=False),
                name="audit_recognizer_readability",
                namespace=f"{NAMESPACE}.recognizer_readability",
            ),
            node(
                nodes.summarise_diagnostics,
                ["audited_run", *[f"diagnostics_{audit}_json" for audit in AUDITS]],
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
