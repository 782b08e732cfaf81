"""Custom Kedro datasets."""
