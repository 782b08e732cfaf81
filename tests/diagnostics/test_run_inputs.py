"""Diagnostics find the audited checkpoint as evaluation and inference do (the run's own, a ``.pt`` file, or a run
id) and load it as a trained run; the settings the run ran with are typed, from its checkpoint or its logged
params read back through the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from htr_pipeline.checkpoints import TrainedRunConfig, checkpoint_file, save_gan_checkpoint
from htr_pipeline.config import flatten_as_logged
from htr_pipeline.diagnostics.run_inputs import (
    MissingCheckpoint,
    checkpoint_run,
    config_from_logged_params,
    find_trained_run,
    run_config,
)
from htr_pipeline.diagnostics.verdicts import NotCheckedError
from htr_pipeline.trained_run import TrainedRun
from tests.trained_runs import TINY_RUN_CONFIG, tiny_trained_checkpoint


def _no_run_lookup(run_id: str) -> str:
    raise AssertionError(f"a .pt file or the run's own folder needs no run lookup, got {run_id}")


def test_diagnostics_accept_a_pt_file_for_the_checkpoint(tmp_path: Path):
    path = tmp_path / "elsewhere" / "mine.pt"
    save_gan_checkpoint(tiny_trained_checkpoint(), path)
    found = find_trained_run(str(path), "best", None, _no_run_lookup)
    assert isinstance(found, TrainedRun) and found.path == path and found.epoch == 3
    assert found.config is not None and found.config.data.image_height == 32
    assert found.charset.symbols == ("a", "b")
    assert run_config(found, {"data.image_height": "64"}).data.image_height == 32  # what ran, not as logged


def test_diagnostics_take_a_run_id_through_the_run_lookup(tmp_path: Path):
    save_gan_checkpoint(tiny_trained_checkpoint(), checkpoint_file(tmp_path / "run-7", "best_cer"))
    found = find_trained_run("run-7", "best_cer", None, lambda run_id: str(tmp_path / run_id))
    assert isinstance(found, TrainedRun) and found.path == tmp_path / "run-7" / "best_cer.pt"


def test_without_a_setting_the_audited_runs_own_checkpoint_or_why_it_is_missing(tmp_path: Path):
    save_gan_checkpoint(tiny_trained_checkpoint(), checkpoint_file(tmp_path, "last"))
    assert isinstance(find_trained_run(None, "last", str(tmp_path), _no_run_lookup), TrainedRun)
    missing = find_trained_run(None, "best", str(tmp_path), _no_run_lookup)
    assert missing == MissingCheckpoint(
        str(tmp_path / "best.pt"), f"{tmp_path / 'best.pt'} does not exist on this machine"
    )
    untagged = find_trained_run(None, "best", None, _no_run_lookup)
    assert untagged.reason == "the run has no checkpoint folder tag (it never finished a GAN epoch)"
    with pytest.raises(NotCheckedError, match="never finished a GAN epoch"):
        checkpoint_run(untagged)


def test_without_a_checkpoint_the_logged_params_are_read_back_through_the_schema():
    ran = TrainedRunConfig.model_validate(
        {
            "data": TINY_RUN_CONFIG.data.model_dump(mode="json"),
            "training": {
                "drop_infeasible": True,
                "precision": "bf16",
                "resume_from": "runs/last.pt",
                "early_stopping": None,  # a value, so a tampered record can also hold it as a section
            },
        }
    )
    logged = flatten_as_logged(ran.model_dump(mode="json"))
    assert logged["training.drop_infeasible"] == "True" and logged["training.early_stopping"] == "None"
    no_checkpoint = MissingCheckpoint(path=None, reason="none kept")
    assert run_config(no_checkpoint, {**logged, "evaluation.split": "test"}) == ran
    assert run_config(no_checkpoint, logged).training.drop_infeasible is True
    without_the_flag = {key: text for key, text in logged.items() if key != "training.drop_infeasible"}
    assert config_from_logged_params(without_the_flag).training.drop_infeasible is False  # the schema's default
    with pytest.raises(
        NotCheckedError, match=r"(?s)none kept\) and its logged params .*training\.compile: unknown key"
    ):
        run_config(no_checkpoint, {**logged, "training.compile": "False"})
    with pytest.raises(NotCheckedError, match=r"hold training\.early_stopping\.patience under a key that has a value"):
        run_config(no_checkpoint, {**logged, "training.early_stopping.patience": "15"})
    reversed_order = {"training.early_stopping.patience": "15", **logged}
    with pytest.raises(NotCheckedError, match=r"hold training\.early_stopping as a value and as a section"):
        run_config(no_checkpoint, reversed_order)
