"""Experiments over runs: compare evaluated runs with paired intervals, and sweep settings with Optuna.

Plain Python over plain data: a run to compare arrives as its logged params, its per-line evaluation table and its
validation history (:class:`.runs.ComparedRun`); the sweep drives trials through a small interface that the Kedro
side implements with ``kedro run`` processes and MLflow (:mod:`.trials`).
"""
