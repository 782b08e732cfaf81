"""Audits of a training run: each returns a report with a verdict (ok, warning or problem)."""
