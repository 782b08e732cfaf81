"""Restoring a folder of your own scans, lines or whole pages, with a trained generator (no Kedro inside)."""
