"""Paper levels: every image the generator sees has its paper brought to one brightness first, whatever it is
batched with; a dark, grained real page is levelled so its paper is as bright as the paper the model learned on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from htr_pipeline.config import PaperLevelsConfig, ResidualUnetGeneratorConfig, UnetGeneratorConfig
from htr_pipeline.models.paper_levels import MAX_PIXELS_PER_IMAGE, PaperLevels, level_paper, paper_gains
from htr_pipeline.models.registry import build_generator
from tests.conftest import SHARED_DATA, requires_shared_data

LEVELS = PaperLevels(quantile=0.9, target=0.96, max_gain=4.0)


def _line_on_paper(paper: float, ink: float, height: int = 16, width: int = 40, seed: int = 0) -> torch.Tensor:
    """A (1, 1, height, width) line: grained paper around ``paper`` and ink strokes at ``ink`` x paper."""
    generator = torch.Generator().manual_seed(seed)
    image = paper * (1.0 + 0.05 * torch.randn(1, 1, height, width, generator=generator))
    image[..., 5:11, 4:36:6] *= ink
    return image.clamp(0.0, 1.0)


def test_dark_paper_is_brought_to_the_target_and_ink_keeps_its_contrast():
    line = _line_on_paper(paper=0.54, ink=0.65)
    levelled = level_paper(line, LEVELS)
    assert torch.quantile(levelled.flatten(), 0.9).item() == pytest.approx(0.96, abs=1e-3)
    gain = paper_gains(line, LEVELS).item()
    assert gain == pytest.approx(0.96 / torch.quantile(line.flatten(), 0.9).item(), rel=1e-4)
    assert torch.allclose(levelled, (line * gain).clamp(0.0, 1.0))  # one gain: ink / paper unchanged


def test_bright_paper_is_never_darkened_and_a_black_image_is_brightened_at_most_max_gain():
    bright = _line_on_paper(paper=0.99, ink=0.2)
    assert torch.equal(level_paper(bright, LEVELS), bright)
    black = torch.full((1, 1, 8, 8), 0.05)
    assert paper_gains(black, LEVELS).item() == 4.0


def test_white_padding_does_not_change_how_a_line_is_levelled():
    line = _line_on_paper(paper=0.6, ink=0.5)
    padded = torch.ones(2, 1, 16, 120)
    padded[0, :, :, :40] = line[0]
    padded[1] = _line_on_paper(paper=0.7, ink=0.5, width=120, seed=1)[0]
    alone, in_batch = level_paper(line, LEVELS), level_paper(padded, LEVELS)
    assert torch.allclose(in_batch[0, :, :, :40], alone[0], atol=1e-6)
    assert paper_gains(padded, LEVELS)[1].item() != pytest.approx(paper_gains(line, LEVELS).item(), abs=0.05)


def test_an_all_white_image_is_left_as_it_is():
    white = torch.ones(2, 1, 8, 24)
    assert torch.equal(paper_gains(white, LEVELS), torch.ones(2))
    assert torch.equal(level_paper(white, LEVELS), white)


def test_none_leaves_the_input_alone():
    line = _line_on_paper(paper=0.5, ink=0.5)
    assert level_paper(line, None) is line


@pytest.mark.parametrize(
    "config",
    [
        UnetGeneratorConfig(variant="unet", channels=[4, 8]),
        ResidualUnetGeneratorConfig(variant="unet_residual", channels=[4, 8]),
    ],
)
def test_every_generator_levels_its_input_before_anything_else(config):
    """An untrained generator returns its input (its last conv starts at zero): with paper levels on (the
    default), that is the levelled input; with null, the input as it is. Same weights, same parameters."""
    assert config.paper_levels == PaperLevelsConfig()
    torch.manual_seed(0)
    levelled_generator = build_generator(config).eval()
    plain_generator = build_generator(config.model_copy(update={"paper_levels": None})).eval()
    plain_generator.load_state_dict(levelled_generator.state_dict(), strict=True)
    line = _line_on_paper(paper=0.55, ink=0.6)
    with torch.no_grad():
        # (to within the logit's clamp of 1e-3 at white)
        assert torch.allclose(levelled_generator(line), level_paper(line, LEVELS), atol=1.01e-3)
        assert torch.allclose(plain_generator(line), line, atol=1.01e-3)
        assert not torch.allclose(plain_generator(line), levelled_generator(line), atol=0.1)
        # Trained or not, the levelled generator is the plain one on the levelled input.
        torch.nn.init.normal_(levelled_generator.to_image.weight, std=0.1)
        plain_generator.load_state_dict(levelled_generator.state_dict(), strict=True)
        assert torch.allclose(levelled_generator(line), plain_generator(level_paper(line, LEVELS)), atol=1e-6)


@requires_shared_data("dibco_2009_2011")
def test_the_grained_board_of_dibco_2011_pr7_is_levelled_to_bright_paper():
    """The page whose dark leather grain a model without levels turned into specks: its paper (139 of 255 where
    the ground truth has no ink) is brought to the target, its typewritten ink stays darker than any paper."""
    folder = SHARED_DATA / "dibco_2009_2011"
    scan = np.asarray(Image.open(folder / "images" / "2011-PR7.png").convert("L"), dtype=np.float32) / 255.0
    ink = np.asarray(Image.open(folder / "gt" / "2011-PR7_gt.png").convert("L")) < 128
    levelled = level_paper(torch.from_numpy(scan)[None, None], LEVELS)[0, 0].numpy()
    assert np.median(scan[~ink]) < 0.6
    assert np.median(levelled[~ink]) == pytest.approx(0.90, abs=0.03)  # its quantile 0.9 at 0.96
    assert np.median(levelled[ink]) < np.quantile(levelled[~ink], 0.05)


def test_a_large_window_is_levelled_from_a_subsample_of_its_rows_and_columns_as_from_all_its_pixels():
    """Past MAX_PIXELS_PER_IMAGE pixels the quantile is taken on every n-th row and column: on a page window whose
    paper darkens from top to bottom, the gain is the whole window's, not that of its first rows."""
    generator = torch.Generator().manual_seed(3)
    rows = torch.linspace(0.45, 0.75, 600).view(1, 1, 600, 1)
    window = (rows * (1.0 + 0.03 * torch.randn(1, 1, 600, 560, generator=generator))).clamp(0.0, 1.0)
    assert window[0, 0].numel() > MAX_PIXELS_PER_IMAGE
    whole = 0.96 / torch.quantile(window.flatten(), 0.9).item()
    assert paper_gains(window, LEVELS).item() == pytest.approx(whole, rel=5e-3)
    assert paper_gains(window[..., :100, :], LEVELS).item() > 1.2 * whole  # the top rows alone would differ
