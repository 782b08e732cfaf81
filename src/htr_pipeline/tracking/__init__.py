"""MLflow, in four modules (the library never imports MLflow; ``hooks.py``, the catalog's datasets and the nodes that
read runs back reach it here):

- :mod:`~htr_pipeline.tracking.run_logging`: what goes into a run while it runs: the training loop's live metrics
  (:class:`MlflowTracker`), and the outputs ``conf/base/catalog.yml`` declares (artifacts, metrics, params);
- :mod:`~htr_pipeline.tracking.store`: the store: reading a training run back, tags that link runs, run states
  (``KILLED``, ``FINISHED``), the store-creation lock, a copied project's artifact locations;
- :mod:`~htr_pipeline.tracking.logged_models`: the models an evaluation logs, and loading them back safely;
- :mod:`~htr_pipeline.tracking.experiment_runs`: evaluated runs read back for a comparison, runs found by tag or
  study, and the runs a sweep creates for its trials (:class:`SweepRunStore`).

The names below are the package's public face: ``from htr_pipeline.tracking import load_logged_generator``.
"""

from htr_pipeline.tracking.experiment_runs import (
    EVALUATION_SAMPLES_ARTIFACT,
    SweepRunStore,
    active_run_tag,
    read_compared_run,
    sweep_trial_run_ids,
    tagged_run_ids,
)
from htr_pipeline.tracking.logged_models import (
    LOGGED_WEIGHTS_FOLDER,
    ModelsToLog,
    load_logged_generator,
    load_logged_model,
    log_models,
    register_generator,
)
from htr_pipeline.tracking.run_logging import (
    MlflowTracker,
    active_run_id,
    current_tracking_uri,
    tracker_for_current_store,
)
from htr_pipeline.tracking.store import (
    CHECKPOINT_FOLDER_TAG,
    EVALUATED_RUN_TAG,
    EVALUATION_RUN_TAG,
    EVALUATION_SUMMARY_ARTIFACT,
    RUN_HOST_TAG,
    RUN_PID_TAG,
    LoggedTrainingRun,
    RunNotFoundError,
    checkpoint_folder_of_run,
    latest_training_run_id,
    read_training_run,
    tag_run,
    tag_run_process,
)

__all__ = [
    "CHECKPOINT_FOLDER_TAG",
    "EVALUATED_RUN_TAG",
    "EVALUATION_RUN_TAG",
    "EVALUATION_SAMPLES_ARTIFACT",
    "EVALUATION_SUMMARY_ARTIFACT",
    "LOGGED_WEIGHTS_FOLDER",
    "RUN_HOST_TAG",
    "RUN_PID_TAG",
    "LoggedTrainingRun",
    "MlflowTracker",
    "ModelsToLog",
    "RunNotFoundError",
    "SweepRunStore",
    "active_run_id",
    "active_run_tag",
    "checkpoint_folder_of_run",
    "current_tracking_uri",
    "latest_training_run_id",
    "load_logged_generator",
    "load_logged_model",
    "log_models",
    "read_compared_run",
    "read_training_run",
    "register_generator",
    "sweep_trial_run_ids",
    "tag_run",
    "tag_run_process",
    "tagged_run_ids",
    "tracker_for_current_store",
]
