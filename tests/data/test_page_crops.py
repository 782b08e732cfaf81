"""Page pairs cut into crops that batch with text lines: no text, fixed positions, the lines' height."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.config import TrainingConfig
from htr_pipeline.data.line_batches import PageCropDataset
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.training.data_loading import line_loader


def _save(root: Path, relative: str, image: np.ndarray) -> str:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / relative)
    return relative


@pytest.fixture
def page_store(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, LineImageStore]:
    rng = np.random.default_rng(0)
    pages, lines = [], []
    for index, (height, width) in enumerate(((120, 300), (90, 200))):
        clean = np.where(rng.random((height, width)) < 0.1, 0, 255).astype(np.uint8)
        degraded = np.clip(clean * 0.7 + 40, 0, 255).astype(np.uint8)
        pages.append(
            {
                "sample_id": f"page{index}",
                "split": "train",
                "image_type": "page",
                "transcription": None,
                "height": height,
                "width": width,
                "degraded_path": _save(tmp_path, f"degraded/page{index}.png", degraded),
                "clean_path": _save(tmp_path, f"clean/page{index}.png", clean),
            }
        )
    for index, width in enumerate((64, 80)):
        line = np.full((32, width), 230, dtype=np.uint8)
        lines.append(
            {
                "sample_id": f"line{index}",
                "split": "train",
                "image_type": "line",
                "transcription": "ab",
                "height": 32,
                "width": width,
                "degraded_path": _save(tmp_path, f"degraded/line{index}.png", line),
                "clean_path": _save(tmp_path, f"clean/line{index}.png", line),
            }
        )
    return pd.DataFrame(pages), pd.DataFrame(lines), LineImageStore(tmp_path)


def test_crops_are_pieces_of_the_page_pair_at_fixed_positions(page_store):
    pages, _, store = page_store
    crops = PageCropDataset(pages, store, crop_height=32, crop_width=64, crops_per_page=5, seed=3)
    again = PageCropDataset(pages, store, crop_height=32, crop_width=64, crops_per_page=5, seed=3)
    assert len(crops) == 10 and crops.widths == [64] * 10
    assert crops.origins == again.origins
    crop = crops[7]  # page 1, crop 2
    top, left = crops.origins[1][2]
    page_clean = store.read(pages.at[1, "clean_path"])
    expected = torch.from_numpy(page_clean[top : top + 32, left : left + 64]).float().div(255).unsqueeze(0)
    assert crop.sample_id == "page1#crop002" and crop.text == "" and len(crop.labels) == 0
    assert torch.equal(crop.clean, expected)
    assert crop.degraded.shape == (1, 32, 64)


def test_a_page_smaller_than_a_crop_is_named(page_store):
    pages, _, store = page_store
    with pytest.raises(ValueError, match="page page1 \\(200 x 90 px\\) is smaller than a 256 x 32 crop"):
        PageCropDataset(pages.iloc[1:], store, crop_height=32, crop_width=256, crops_per_page=2, seed=0)


def test_the_training_loader_mixes_lines_and_crops_of_the_lines_height(page_store):
    pages, lines, store = page_store
    config = TrainingConfig.model_validate(
        {
            "batch_size": 4,
            "page_crops": {"width": 64, "crops_per_page": 3},
            "generator": {"variant": "unet", "channels": [8, 16]},
        }
    )
    loader = line_loader(lines, store, Charset.from_texts(["ab"]), config, 4, True, torch.device("cpu"), pages=pages)
    loader.batch_sampler.set_epoch(1)
    batches = list(loader)
    sample_ids = sorted(sample_id for batch in batches for sample_id in batch.sample_ids)
    assert len(sample_ids) == 2 + 2 * 3 and "line0" in sample_ids and "page1#crop002" in sample_ids
    assert {batch.clean.shape[-2] for batch in batches} == {32}
    texts = {text for batch in batches for text in batch.texts}
    assert texts == {"ab", ""}
