from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.config import InferenceConfig, UnetGeneratorConfig
from htr_pipeline.data.images import UnreadableImageError, read_grayscale
from htr_pipeline.inference.inputs import SkippedInput, list_input_images
from htr_pipeline.inference.restoration import run_inference
from htr_pipeline.trained_run import TrainedRun
from tests.trained_runs import TINY_RECOGNIZER, TINY_RUN_CONFIG

EXIF_ORIENTATION_TAG = 0x0112
ROTATE_90_CLOCKWISE_TO_DISPLAY = 6


def save_array(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(pixels, mode).save(path)
    return path


def grey_png(path: Path) -> Path:
    return save_array(path, np.array([[0, 100, 255]], dtype=np.uint8))


def rgb_bmp(path: Path) -> Path:
    return save_array(path, np.array([[[255, 0, 0], [0, 255, 0], [10, 20, 30]]], dtype=np.uint8))


def rgba_png(path: Path) -> Path:
    # transparent black, opaque black ink, half-transparent black
    return save_array(path, np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8), "RGBA")


def grey_alpha_png(path: Path) -> Path:
    return save_array(path, np.array([[[0, 0], [0, 255], [0, 128]]], dtype=np.uint8), "LA")


def palette_png(path: Path, transparent_index: int | None = None) -> Path:
    image = Image.new("P", (3, 1))
    image.putpalette([0, 0, 0, 255, 255, 255, 100, 100, 100])
    for x, index in enumerate([0, 1, 2]):
        image.putpixel((x, 0), index)
    if transparent_index is None:
        image.save(path)
    else:
        image.save(path, transparency=transparent_index)
    return path


def palette_with_transparency_png(path: Path) -> Path:
    return palette_png(path, transparent_index=0)


def sixteen_bit_png(path: Path) -> Path:
    return save_array(path, np.array([[0, 32768, 65535]], dtype=np.uint16))


def sixteen_bit_big_endian_tiff(path: Path) -> Path:
    return save_array(path, np.array([[0, 32768, 65535]], dtype=">u2"))


def thirty_two_bit_in_sixteen_bit_range_tiff(path: Path) -> Path:
    return save_array(path, np.array([[0, 32768, 65535]], dtype=np.int32))


def thirty_two_bit_wide_range_tiff(path: Path) -> Path:
    return save_array(path, np.array([[-1_000_000, 0, 1_000_000]], dtype=np.int32))


def float_fraction_tiff(path: Path) -> Path:
    return save_array(path, np.array([[0.0, 0.5, 1.0]], dtype=np.float32))


def float_wide_range_tiff(path: Path) -> Path:
    return save_array(path, np.array([[-2.0, 1.0, 4.0]], dtype=np.float32))


def one_bit_png(path: Path) -> Path:
    return save_array(path, np.array([[False, True, False]]))


# The transparent pixels are white paper; everything else is Pillow's L conversion or the documented scaling.
MODE_CASES: list[tuple[str, str, Callable[[Path], Path], list[int]]] = [
    ("grey.png", "L", grey_png, [0, 100, 255]),
    ("colour.bmp", "RGB", rgb_bmp, [76, 150, 18]),
    ("alpha.png", "RGBA", rgba_png, [255, 0, 127]),
    ("grey_alpha.png", "LA", grey_alpha_png, [255, 0, 127]),
    ("palette.png", "P", palette_png, [0, 255, 100]),
    ("palette_transparent.png", "P", palette_with_transparency_png, [255, 255, 100]),
    ("deep.png", "I;16", sixteen_bit_png, [0, 128, 255]),
    ("deep_big_endian.tif", "I;16B", sixteen_bit_big_endian_tiff, [0, 128, 255]),
    ("int32_narrow.tif", "I", thirty_two_bit_in_sixteen_bit_range_tiff, [0, 128, 255]),
    ("int32_wide.tif", "I", thirty_two_bit_wide_range_tiff, [0, 128, 255]),
    ("float_fraction.tif", "F", float_fraction_tiff, [0, 128, 255]),
    ("float_wide.tif", "F", float_wide_range_tiff, [0, 128, 255]),
    ("one_bit.png", "1", one_bit_png, [0, 255, 0]),
]


@pytest.mark.parametrize(("name", "mode", "write", "expected_row"), MODE_CASES, ids=[case[0] for case in MODE_CASES])
def test_every_pillow_mode_reads_as_eight_bit_grey(
    tmp_path: Path, name: str, mode: str, write: Callable[[Path], Path], expected_row: list[int]
):
    path = write(tmp_path / name)
    with Image.open(path) as opened:
        assert opened.mode == mode, "the file must exercise the mode it is named for"
    grey = read_grayscale(path)
    assert grey.dtype == np.uint8
    assert grey.tolist() == [expected_row]


def test_exif_orientation_turns_a_jpeg_upright(tmp_path: Path):
    # 40 wide x 10 high, dark left half: displayed rotated 90 degrees clockwise, the left half becomes the top.
    pixels = np.full((10, 40), 255, dtype=np.uint8)
    pixels[:, :20] = 0
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ROTATE_90_CLOCKWISE_TO_DISPLAY
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif)
    grey = read_grayscale(tmp_path / "rotated.jpg")
    assert grey.shape == (40, 10)
    assert grey[:20].mean() < 50 < 200 < grey[20:].mean()


def test_exif_orientation_is_applied_to_float_images_too(tmp_path: Path):
    pixels = np.zeros((10, 40), dtype=np.float32)
    Image.fromarray(pixels).save(tmp_path / "rotated.tif", tiffinfo={EXIF_ORIENTATION_TAG: 6})
    assert read_grayscale(tmp_path / "rotated.tif").shape == (40, 10)


def test_a_file_that_is_not_an_image_cannot_be_read(tmp_path: Path):
    (tmp_path / "notes.png").write_text("not pixels")
    with pytest.raises(UnreadableImageError, match=r"notes\.png"):
        read_grayscale(tmp_path / "notes.png")


def test_listing_skips_what_pillow_cannot_read_and_keeps_the_rest(tmp_path: Path):
    grey_png(tmp_path / "b_page.png")
    rgb_bmp(tmp_path / "a_line.bmp")
    (tmp_path / "notes.txt").write_text("transcriptions, not pixels")
    grey_png(tmp_path / ".hidden.png")
    (tmp_path / "nested").mkdir()
    grey_png(tmp_path / "nested" / "inner.png")

    readable, skipped = list_input_images(tmp_path)

    assert readable == [tmp_path / "a_line.bmp", tmp_path / "b_page.png"]
    assert skipped == [
        SkippedInput(
            path=str(tmp_path / "nested"),
            reason="a folder: inference reads the images directly in inference.input_path, not in subfolders",
        ),
        SkippedInput(
            path=str(tmp_path / "notes.txt"), reason="not an image Pillow can read: cannot identify image file"
        ),
    ]


def test_inputs_of_one_stem_write_distinct_outputs(tmp_path: Path):
    grey_png(tmp_path / "a.png")
    rgb_bmp(tmp_path / "a.jpg")
    grey_png(tmp_path / "a.jpg.png")
    readable, skipped = list_input_images(tmp_path)
    assert readable == [tmp_path / "a.jpg", tmp_path / "a.png"]
    assert skipped == [
        SkippedInput(path=str(tmp_path / "a.jpg.png"), reason="its outputs would be named a.jpg.png, as those of a.jpg")
    ]
    identity = TrainedRun(
        path=tmp_path / "identity.pt",
        description="identity",
        charset=Charset(("a",)),
        recognizers={"in_loop": torch.nn.Identity()},
        recognizer_config=TINY_RECOGNIZER,
        generator=torch.nn.Identity(),
        generator_config=UnetGeneratorConfig(variant="unet", channels=[4, 4, 4, 4]),
        config=TINY_RUN_CONFIG,
    )
    config = InferenceConfig(mode="pages", page_window=64, window_overlap=16)
    result = run_inference(readable, skipped, identity, config, torch.device("cpu"))
    assert sorted(name for name in result.files if name.startswith("restored/")) == [
        "restored/a.jpg.png",
        "restored/a.png",
    ]
    assert list(result.table["restored"]) == ["restored/a.jpg.png", "restored/a.png"]
    assert [item["path"] for item in result.summary["skipped"]] == [str(tmp_path / "a.jpg.png")]


def test_a_truncated_image_is_skipped_with_the_decoding_error(tmp_path: Path):
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    whole = save_array(tmp_path / "whole.png", noise).read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])

    readable, skipped = list_input_images(tmp_path)

    assert readable == [tmp_path / "whole.png"]
    assert [entry.path for entry in skipped] == [str(tmp_path / "truncated.png")]
    assert skipped[0].reason.startswith("an image Pillow cannot decode")


def test_a_missing_folder_names_the_folder_and_the_setting(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"scans.*inference\.input_path"):
        list_input_images(tmp_path / "scans")
