"""One bad input never stops a run nor touches a file outside the project: each fault with a real file."""

from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError
from PIL import Image

from htr_pipeline.data.materialise import _output_path
from htr_pipeline.data.sources import RejectReason
from htr_pipeline.datasets.line_image_store import LineImageStoreDataset
from tests.conftest import write_line_png
from tests.data.test_sources import _config, _ingest

GOOD_TEXTS = ["un", "deux", "trois", "quatre", "cinq", "six"]


def _good_lines(folder: Path) -> str:
    """Six good lines in ``folder``; their ``labels.tsv`` rows."""
    for index in range(len(GOOD_TEXTS)):
        write_line_png(folder / f"good_{index}.png", seed=index)
    return "".join(f"good_{index}.png\t{text}\n" for index, text in enumerate(GOOD_TEXTS))


def _reasons(rejects) -> dict[str, str]:
    return dict(zip(rejects["reason"], rejects["detail"], strict=True))


# ------------------------------------------------------------------------------------------- path traversal


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    return write_line_png(tmp_path / "outside" / "victim.png", seed=99)


def test_a_labels_key_climbing_out_of_the_source_is_rejected_and_never_read(tmp_path: Path, victim: Path):
    root = tmp_path / "set"
    before = victim.read_bytes()
    rows = _good_lines(root / "lines")
    (root / "labels.tsv").write_text(rows + f"../../outside/victim.png\tvictim\n{victim}\tabsolute\n")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert victim.read_bytes() == before
    escaping = rejects[rejects["reason"] == RejectReason.PATH_OUTSIDE_SOURCE]
    assert len(escaping) == 2 and len(manifest) == len(GOOD_TEXTS)
    assert escaping["detail"].str.contains("labels.tsv:7: '../../outside/victim.png' resolves to").any()
    assert escaping["detail"].str.contains("outside the source folder").all()


def test_a_symbolic_link_out_of_the_source_is_rejected(tmp_path: Path, victim: Path):
    root = tmp_path / "sidecar"
    for index, text in enumerate(GOOD_TEXTS):
        write_line_png(root / f"line_{index}.png", seed=index)
        (root / f"line_{index}.txt").write_text(text)
    (root / "linked.png").symlink_to(victim)
    (root / "linked.txt").write_text("linked")
    manifest, rejects = _ingest(_config({"kind": "line_folder", "name": "side", "path": str(root)}))
    assert list(rejects["reason"]) == [RejectReason.PATH_OUTSIDE_SOURCE]
    assert "(a symbolic link) resolves to" in rejects["detail"].iloc[0] and len(manifest) == len(GOOD_TEXTS)


def test_paired_folder_tsv_keys_outside_the_source_are_rejected(tmp_path: Path, victim: Path):
    root = tmp_path / "pairs"
    for index in range(6):
        write_line_png(root / f"images/p{index}.png", seed=index)
        write_line_png(root / f"gt/p{index}_gt.png", seed=index)
    (root / "labels.tsv").write_text("p0.png\tzero\n../../outside/victim.png\tvictim\n")
    splits = "".join(f"p{index}.png\ttrain\n" for index in range(5)) + "p5.png\tvalid\n"
    (root / "splits.tsv").write_text(splits + "../../outside/victim.png\ttrain\n")
    manifest, rejects = _ingest(_config({"kind": "paired_folder", "path": str(root), "image_type": "line"}))
    assert list(rejects["reason"]) == [RejectReason.PATH_OUTSIDE_SOURCE]
    assert "labels.tsv:2" in rejects["detail"].iloc[0] and len(manifest) == 6


def test_an_id_with_dot_dot_parts_is_written_inside_the_output_folder(tmp_path: Path):
    root = tmp_path / "set"
    rows = _good_lines(root / "lines")
    write_line_png(root / "lines" / "..." / "odd.png")
    (root / "labels.tsv").write_text(rows + ".../odd.png\todd\n")
    manifest, _ = _ingest(_config({"kind": "line_folder", "name": "lines", "path": str(root)}))
    assert "clean/lines/.../odd.png" in set(manifest["clean_path"])
    assert _output_path("../../outside/victim") == "%2E%2E/%2E%2E/outside/victim"
    assert _output_path("/etc/passwd") == "%/etc/passwd"


def test_the_image_store_refuses_a_path_out_of_its_folder(tmp_path: Path, victim: Path):
    before = victim.read_bytes()
    store = LineImageStoreDataset(filepath=str(tmp_path / "store" / "line_images"))
    pixels = np.asarray(Image.open(write_line_png(tmp_path / "x.png")).convert("L"))
    with pytest.raises(DatasetError, match=r"'\.\./\.\./outside/victim\.png' would be written to .*outside"):
        store.save({"clean/ok.png": pixels, "../../outside/victim.png": pixels})
    assert victim.read_bytes() == before
    assert not (tmp_path / "store" / "line_images" / "clean" / "ok.png").exists()
