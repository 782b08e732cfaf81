"""Data sources, degradations, splits and images: plain functions, no Kedro."""
