"""Which checkpoint a ``checkpoint`` setting names (shared by evaluation and inference)."""

from pathlib import Path

from htr_pipeline.evaluation.loading import training_checkpoint


def _folder_of_run(run_id: str) -> str:
    return f"/runs/{run_id}"


def test_null_names_the_latest_run_a_pt_file_itself_and_anything_else_a_run_id():
    assert training_checkpoint(None, "best", "/latest", _folder_of_run) == Path("/latest/best.pt")
    assert training_checkpoint("/models/mine.pt", "best", "/latest", _folder_of_run) == Path("/models/mine.pt")
    assert training_checkpoint("abc123", "best_cer", "/latest", _folder_of_run) == Path("/runs/abc123/best_cer.pt")
