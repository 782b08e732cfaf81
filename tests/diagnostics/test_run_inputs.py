"""Diagnostics find the audited checkpoint as evaluation and inference do: the run's own, a ``.pt`` file, or a
run id."""

from __future__ import annotations

from pathlib import Path

from htr_pipeline.checkpoints import checkpoint_file, save_gan_checkpoint
from htr_pipeline.diagnostics.run_inputs import RunCheckpoint, find_run_checkpoint, run_flag, run_setting
from tests.trained_runs import TINY_RUN_CONFIG, tiny_gan_checkpoint, tiny_run_metadata


def _no_run_lookup(run_id: str) -> str:
    raise AssertionError(f"a .pt file or the run's own folder needs no run lookup, got {run_id}")


def test_diagnostics_accept_a_pt_file_for_the_checkpoint(tmp_path: Path):
    path = tmp_path / "elsewhere" / "mine.pt"
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), path)
    found = find_run_checkpoint(str(path), "best", None, _no_run_lookup)
    assert (found.path, found.missing_reason) == (str(path), None)
    assert found.state is not None and found.state.epoch == 3
    assert found.config == TINY_RUN_CONFIG.model_dump(mode="json")
    assert found.charset is not None and found.charset.symbols == ("a", "b")
    assert run_setting(found, {"data.image_height": "64"}, "data.image_height") == "32"  # what ran, not as logged


def test_diagnostics_take_a_run_id_through_the_run_lookup(tmp_path: Path):
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), checkpoint_file(tmp_path / "run-7", "best_cer"))
    found = find_run_checkpoint("run-7", "best_cer", None, lambda run_id: str(tmp_path / run_id))
    assert found.path == str(tmp_path / "run-7" / "best_cer.pt") and found.state is not None


def test_without_a_setting_the_audited_runs_own_checkpoint_or_why_it_is_missing(tmp_path: Path):
    save_gan_checkpoint(tiny_gan_checkpoint(tiny_run_metadata()), checkpoint_file(tmp_path, "last"))
    assert find_run_checkpoint(None, "last", str(tmp_path), _no_run_lookup).state is not None
    missing = find_run_checkpoint(None, "best", str(tmp_path), _no_run_lookup)
    assert missing.state is None and missing.missing_reason == f"{tmp_path / 'best.pt'} does not exist on this machine"
    untagged = find_run_checkpoint(None, "best", None, _no_run_lookup)
    assert untagged.missing_reason == "the run has no checkpoint folder tag (it never finished a GAN epoch)"


def test_a_boolean_setting_is_read_back_from_its_logged_text():
    no_checkpoint = RunCheckpoint(path=None, state=None, missing_reason="none kept")
    logged = {"training.drop_infeasible": "True", "training.compile": "False"}
    assert run_flag(no_checkpoint, logged, "training.drop_infeasible") is True
    assert run_flag(no_checkpoint, logged, "training.compile") is False
    assert run_flag(no_checkpoint, logged, "training.missing") is False
