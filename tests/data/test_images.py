from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.data.images import UnreadableImageError, normalise_line, read_grayscale


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits(tmp_path: Path):
    wide = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "deep.png")
    assert read_grayscale(tmp_path / "deep.png").tolist() == [[0, 128, 255]]


def test_transparent_pixels_become_white_paper(tmp_path: Path):
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 1] = (0, 0, 0, 255)  # opaque black ink; pixel 0 is fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert read_grayscale(tmp_path / "alpha.png").tolist() == [[255, 0]]


def test_palette_and_rgb_images_become_grayscale(tmp_path: Path):
    rgb = Image.new("RGB", (4, 2), (200, 100, 50))
    rgb.convert("P").save(tmp_path / "palette.gif")
    rgb.save(tmp_path / "colour.bmp")
    expected = np.asarray(rgb.convert("L"))
    assert np.array_equal(read_grayscale(tmp_path / "colour.bmp"), expected)
    assert read_grayscale(tmp_path / "palette.gif").shape == (2, 4)


def test_exif_rotation_is_applied(tmp_path: Path):
    image = Image.new("L", (40, 10), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_grayscale(tmp_path / "rotated.jpg").shape == (40, 10)


def test_a_file_that_is_not_an_image_is_unreadable(tmp_path: Path):
    (tmp_path / "notes.png").write_text("not pixels")
    with pytest.raises(UnreadableImageError, match=r"notes\.png"):
        read_grayscale(tmp_path / "notes.png")


def test_lines_keep_their_aspect_and_wide_lines_are_squeezed():
    line = np.full((32, 100), 255, dtype=np.uint8)
    kept = normalise_line(line, image_height=64, max_width=512)
    assert kept.image.shape == (64, 200) and kept.width_scale == 1.0
    squeezed = normalise_line(line, image_height=64, max_width=150)
    assert squeezed.image.shape == (64, 150) and squeezed.width_scale == pytest.approx(0.75)


def test_wide_values_are_read_faithfully_everywhere(tmp_path: Path):
    # A float image of fractions of white reads as grey levels (ingestion once made it all black: 0, 0, 1).
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "fractions.tif")
    assert read_grayscale(tmp_path / "fractions.tif").tolist() == [[0, 128, 255]]
    # 32-bit integers beyond 16 bits: stretched over their own range (ingestion once clipped them at 65535).
    Image.fromarray(np.array([[0, 100_000, 200_000]], dtype=np.int32)).save(tmp_path / "wide.tif")
    assert read_grayscale(tmp_path / "wide.tif").tolist() == [[0, 128, 255]]
    # Float beyond [0, 1] and NaN: stretched over the finite range; a constant image keeps its value, clipped.
    Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32)).save(tmp_path / "range.tif")
    assert read_grayscale(tmp_path / "range.tif").tolist() == [[0, 128, 255]]
    Image.fromarray(np.full((2, 3), 300_000, dtype=np.int32)).save(tmp_path / "constant.tif")
    assert read_grayscale(tmp_path / "constant.tif").tolist() == [[255] * 3] * 2


def test_images_taller_than_a_band_convert_every_band_alike(tmp_path: Path):
    # values: rows 0..599 of a 16-bit ramp; the conversion works band by band (DECODE_BAND_ROWS rows)
    ramp = (np.arange(600, dtype=np.uint32)[:, None] * 100 + np.arange(5)[None, :]).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    expected = np.clip(np.round(ramp / 65535.0 * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(read_grayscale(tmp_path / "ramp.png"), expected)
