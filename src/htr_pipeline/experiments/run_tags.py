"""The MLflow tags a sweep puts on the runs it starts, and reads back: named once, here.

The sweep's library (:mod:`htr_pipeline.experiments.trials`) writes them through its ``RunStore``;
:mod:`htr_pipeline.tracking.experiment_runs` reads them to find a study's trials and to label compared runs. The
tags between a comparison and the runs it compares are declared in ``conf/base/catalog.yml`` (``comparison_summary``).
"""

STUDY_TAG = "htr.sweep.study"
"""On every run a sweep starts: the study it belongs to (``comparison.tag: htr.sweep.study=<name>`` finds them)."""
TRIAL_TAG = "htr.sweep.trial"
"""The trial's number in the study."""
CONFIGURATION_TAG = "htr.sweep.configuration"
"""Trials of one configuration (repeated over seeds) share it."""
CONFIGURATION_LABEL_TAG = "htr.sweep.label"
"""How tables name the configuration (``training.losses.weights.ctc=3.0``, ``baseline``)."""
SEED_TAG = "htr.sweep.seed"
ROLE_TAG = "htr.sweep.role"
TRIAL_STATE_TAG = "htr.sweep.state"
"""COMPLETE, PRUNED or FAIL: how the trial ended (a trial whose training run finished can still fail after it,
in its objective's evaluation); comparisons of a sweep take the COMPLETE ones."""
OBJECTIVE_SPLIT_TAG = "htr.sweep.objective_split"
"""On the evaluation of a trial on the objective's split (not the comparison's): never compared."""
STAGE_ONE_TAG = "htr.sweep.stage_one"
"""On a stage-1 training run: the stage-1 setting it trained (:func:`htr_pipeline.experiments.space.stage_one_key`)."""
PRUNED_AT_EPOCH_TAG = "htr.sweep.pruned_at_epoch"
