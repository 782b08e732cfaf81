"""Lines composed on real paper: pages read once, split by document, patches cut, ink laid on paper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from htr_pipeline.config import DataConfig, Degradations, RealPaperConfig, SplitFractions
from htr_pipeline.data.degradations import degrade
from htr_pipeline.data.ingestion import assign_splits, ingest
from htr_pipeline.data.paper import PaperPage
from htr_pipeline.data.real_paper import (
    REPLACED_BY_REAL_PAPER,
    PaperLibrary,
    RealPaperError,
    compose_on_real_paper,
    ink_on_white,
    read_paper_library,
    synthesise_degraded,
)
from htr_pipeline.data.seeding import rng_for
from htr_pipeline.data.sources import RejectReason, read_sources
from tests.conftest import SHARED_DATA, requires_shared_data, small_synthetic_parameters
from tests.data.test_degradations import render_clean_line
from tests.data.test_paper import generated_page


def write_page_pairs(folder: Path, stems: list[str]) -> Path:
    """A DIBCO-style folder: ``images/<stem>.png`` scans and ``gt/<stem>_gt.png`` ground truths."""
    (folder / "images").mkdir(parents=True)
    (folder / "gt").mkdir()
    for index, stem in enumerate(stems):
        scan, core, _ = generated_page(seed=index, shape=(120, 200))
        Image.fromarray(scan).save(folder / "images" / f"{stem}.png")
        Image.fromarray(np.where(core, 0, 255).astype(np.uint8)).save(folder / "gt" / f"{stem}_gt.png")
    return folder


def write_page_scans(folder: Path, stems: list[str]) -> Path:
    folder.mkdir(parents=True)
    for index, stem in enumerate(stems):
        scan, _, _ = generated_page(seed=100 + index, shape=(150, 220))
        Image.fromarray(scan).save(folder / f"{stem}.jpg", quality=92)
    return folder


def paper_settings(tmp_path: Path, **overrides) -> RealPaperConfig:
    pairs = write_page_pairs(tmp_path / "pairs", [f"p{index}" for index in range(6)])
    scans = write_page_scans(tmp_path / "scans", ["will_a-0", "will_a-1", "will_b-0", "will_c-0"])
    folders = [
        {"kind": "page_pairs", "name": "pairs", "path": str(pairs)},
        {"kind": "page_scans", "name": "scans", "path": str(scans), "group_pattern": "will_(?P<group>[^-]+)-"},
    ]
    return RealPaperConfig.model_validate({"folders": folders, **overrides})


def test_every_page_lands_in_one_split_with_its_document(tmp_path: Path) -> None:
    library, rejects = read_paper_library(paper_settings(tmp_path), 7, SplitFractions(), 10**8)
    assert rejects == []
    pages = [page.page_id for split in ("train", "valid", "test") for page in library.pages(split)]
    assert sorted(pages) == sorted(library.split_of_page) and len(pages) == len(set(pages)) == 10
    assert all(library.pages(split) for split in ("train", "valid", "test")), "no split without paper"
    assert library.split_of_page["scans:will_a-0"] == library.split_of_page["scans:will_a-1"], "a document is whole"
    kinds = {page.page_id.split(":")[0]: page.ink_from for split in library.pages_by_split.values() for page in split}
    assert kinds == {"pairs": "ground_truth", "scans": "estimated"}


def test_the_split_of_pages_depends_on_the_seed_alone(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    one, _ = read_paper_library(settings, 7, SplitFractions(), 10**8, workers=1)
    two, _ = read_paper_library(settings, 7, SplitFractions(), 10**8, workers=2)
    assert one.split_of_page == two.split_of_page
    for split in ("train", "valid", "test"):
        for page_one, page_two in zip(one.pages(split), two.pages(split), strict=True):
            assert np.array_equal(page_one.paper, page_two.paper) and np.array_equal(page_one.ink, page_two.ink)


def test_unusable_pages_are_rejected_with_a_reason(tmp_path: Path) -> None:
    pairs = write_page_pairs(tmp_path / "pairs", ["a", "b", "c", "d"])
    (pairs / "gt" / "b_gt.png").unlink()
    (pairs / "images" / "c.png").write_bytes(b"not a png")
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(pairs / "gt" / "d_gt.png")
    settings = RealPaperConfig.model_validate({"folders": [{"kind": "page_pairs", "name": "pairs", "path": pairs}]})
    library, rejects = read_paper_library(settings, 7, SplitFractions(), 10**8)
    reasons = {reject.sample_id: reject.reason for reject in rejects}
    assert reasons == {
        "pairs:b": RejectReason.MISSING_CLEAN_IMAGE,
        "pairs:c": RejectReason.UNREADABLE_IMAGE,
        "pairs:d": RejectReason.SIZE_MISMATCH,
    }
    assert list(library.split_of_page) == ["pairs:a"]
    with pytest.raises(RealPaperError, match=r"split\(s\) valid, test have samples to compose but no paper page"):
        library.check_covers(["train", "valid", "test"])


def test_include_keeps_the_pages_it_names_and_a_missing_folder_names_its_key(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    only_pairs = settings.folders[0].model_copy(update={"include": "^p[0-2]"})
    library, _ = read_paper_library(settings.model_copy(update={"folders": [only_pairs]}), 7, SplitFractions(), 10**8)
    assert sorted(library.split_of_page) == ["pairs:p0", "pairs:p1", "pairs:p2"]

    missing = settings.folders[1].model_copy(update={"path": tmp_path / "nowhere"})
    with pytest.raises(
        RealPaperError, match=r"data\.real_paper\.folders\[1\]\.path: folder .*nowhere.* does not exist"
    ):
        read_paper_library(settings.model_copy(update={"folders": [only_pairs, missing]}), 7, SplitFractions(), 10**8)
    excluding = settings.folders[0].model_copy(update={"include": "^zzz"})
    with pytest.raises(RealPaperError, match="no page to take paper from"):
        read_paper_library(settings.model_copy(update={"folders": [excluding]}), 7, SplitFractions(), 10**8)


def flat_page(tone: int = 200, absorption: float = 0.6, shape: tuple[int, int] = (100, 300)) -> PaperPage:
    paper = np.full(shape, tone, np.uint8)
    return PaperPage("flat:0", paper, np.zeros(shape, np.uint8), absorption, "ground_truth", 1.0)


def test_ink_darkens_the_paper_multiplicatively_as_the_pages_ink_does() -> None:
    clean = render_clean_line()
    settings = RealPaperConfig.model_validate(
        {
            "folders": [{"kind": "page_scans", "name": "flat", "path": "."}],
            "ink_fading": {"probability": 0.0, "strength": [0.2, 0.6]},
            "bleed_through": {"probability": 0.0, "strength": [0.2, 0.6]},
        }
    )
    composed, recipe = compose_on_real_paper(clean, [flat_page()], settings, np.random.default_rng(0))
    coverage = 1.0 - clean / 255.0
    expected = 200.0 * (1.0 - recipe["ink_absorption"] * coverage)
    assert np.abs(composed.astype(float) - expected).max() <= 0.5 + 1e-9
    assert composed[clean == 255].tolist() == [200] * int((clean == 255).sum()), "bare paper stays the page's"
    assert 0.6 * 0.75 <= recipe["ink_absorption"] <= 0.6 * 1.15
    assert recipe["page"] == "flat:0" and recipe["ink_fading"] is None and recipe["bleed_through"] is None


def test_bleed_through_is_real_ink_mirrored_under_the_line() -> None:
    clean = np.full((64, 200), 255, np.uint8)  # no ink of its own: what darkens the paper shows through
    page = flat_page(shape=(64, 200))
    ink = np.zeros((64, 200), np.uint8)
    ink[20:40, 10:30] = 255  # a blot of the page's ink near its left edge
    page = PaperPage(page.page_id, page.paper, ink, page.ink_absorption, page.ink_from, page.scale)
    settings = RealPaperConfig.model_validate(
        {
            "folders": [{"kind": "page_scans", "name": "flat", "path": "."}],
            "ink_fading": {"probability": 0.0, "strength": [0.2, 0.6]},
            "bleed_through": {"probability": 1.0, "strength": [0.5, 0.5]},
        }
    )
    composed, recipe = compose_on_real_paper(clean, [page], settings, np.random.default_rng(0))
    ghost = composed < 195
    assert ghost.any() and ghost[:, 170:190].any() and not ghost[:, :60].any(), "mirrored to the right edge"
    assert composed.min() > 200 * (1 - recipe["bleed_through"]["opacity"]) - 1, "faint: at most its opacity"


def grain_settings(probability: float, strength: float = 0.8) -> RealPaperConfig:
    return RealPaperConfig.model_validate(
        {
            "folders": [{"kind": "page_scans", "name": "flat", "path": "."}],
            "ink_fading": {"probability": 0.0, "strength": [0.2, 0.6]},
            "bleed_through": {"probability": 0.0, "strength": [0.2, 0.6]},
            "paper_grain": {"probability": probability, "strength": [strength, strength]},
        }
    )


def test_grain_turned_off_composes_exactly_what_a_config_without_it_composes() -> None:
    clean = render_clean_line()
    page = flat_page(shape=(80, 400))
    without, recipe = compose_on_real_paper(clean, [page], grain_settings(0.0, 0.3), np.random.default_rng(3))
    other_strength, _ = compose_on_real_paper(clean, [page], grain_settings(0.0, 1.0), np.random.default_rng(3))
    assert np.array_equal(without, other_strength) and recipe["paper_grain"] is None


def test_grain_textures_the_paper_with_faint_dark_creases_and_leaves_the_ink() -> None:
    clean = render_clean_line()
    page = flat_page(shape=(80, 400))
    plain, _ = compose_on_real_paper(clean, [page], grain_settings(0.0), np.random.default_rng(3))
    grained, recipe = compose_on_real_paper(clean, [page], grain_settings(1.0), np.random.default_rng(3))
    paper = clean == 255
    assert plain[paper].std() == 0.0, "the flat page's paper is flat"
    assert grained[paper].std() > 4.0, "textured"
    darkest = np.percentile(grained[paper], 1)
    assert 100 < darkest < 190, "faint dark creases, not ink"
    assert np.median(grained[paper]) == pytest.approx(200, abs=6), "the paper keeps its tone"
    ink = clean < 64
    assert grained[ink].mean() < 0.6 * grained[paper].mean(), "the ink stays ink"
    grain = recipe["paper_grain"]
    assert grain["strength"] == 0.8 and grain["along"] in {"rows", "columns"}
    assert 0.3 * 0.8 * 0.5 <= grain["crease_depth"] <= 0.3 * 0.8
    assert json.loads(json.dumps(recipe)) == recipe, "the recipe is plain JSON for the manifest"


def test_without_real_paper_the_degraded_image_is_exactly_today_s() -> None:
    clean = render_clean_line()
    sample = synthesise_degraded(clean, "s:1", "train", 5, Degradations(), None, None)
    expected, expected_recipe = degrade(clean, Degradations(), rng_for(5, "s:1", "degradation"))
    assert np.array_equal(sample.degraded, expected) and sample.recipe == expected_recipe
    assert sample.paper_page is None and sample.clean is clean


def test_on_real_paper_the_kinds_it_replaces_are_not_applied(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    library, _ = read_paper_library(settings, 7, SplitFractions(), 10**8)
    clean = render_clean_line()
    always = Degradations(**{kind: {"probability": 1.0, "strength": [0.3, 0.3]} for kind in Degradations.model_fields})
    sample = synthesise_degraded(clean, "s:1", "valid", 5, always, settings, library)
    kinds = [step["kind"] for step in sample.recipe]
    assert kinds[0] == "real_paper" and not REPLACED_BY_REAL_PAPER & set(kinds)
    assert set(kinds[1:]) == set(Degradations.model_fields) - REPLACED_BY_REAL_PAPER
    assert library.split_of_page[sample.paper_page] == "valid", "a valid sample's paper comes from a valid page"
    assert sample.degraded.shape == clean.shape
    assert sample.recipe[0]["clean_ink"] == "page" and not np.array_equal(sample.clean, clean)  # the default


def test_with_clean_ink_page_the_target_ink_is_as_dark_as_the_composition_made_it(tmp_path: Path) -> None:
    """The degraded image is the same either way; the target's ink is the line's on white at the page's ink
    darkness (1 - absorption x coverage), unfaded: what the composed line would be without its paper."""
    settings = paper_settings(tmp_path, ink_fading={"probability": 1.0, "strength": [0.6, 0.6]})
    library, _ = read_paper_library(settings, 7, SplitFractions(), 10**8)
    clean = render_clean_line()
    drawn_settings = settings.model_copy(update={"clean_ink": "drawn"})
    drawn = synthesise_degraded(clean, "s:1", "train", 5, Degradations(), drawn_settings, library)
    assert drawn.clean is clean, "drawn: the target is the line as drawn"
    toned = synthesise_degraded(clean, "s:1", "train", 5, Degradations(), settings, library)
    assert np.array_equal(toned.degraded, drawn.degraded) and toned.paper_page == drawn.paper_page
    composition = toned.recipe[0]
    assert composition["clean_ink"] == "page" and "clean_ink" not in drawn.recipe[0]
    absorption = composition["ink_absorption"]
    assert 0.05 <= absorption <= 1.0
    ink, paper = clean < 64, clean == 255
    assert (toned.clean[paper] == 255).all(), "white paper stays white"
    expected = 255.0 * (1.0 - absorption * (1.0 - clean[ink] / 255.0))
    assert np.abs(toned.clean[ink].astype(float) - expected).max() <= 0.5
    assert toned.clean[ink].mean() > clean[ink].mean() + 20, "lighter than the drawn ink"
    # Unfaded: the target's ink is as even as the drawn line's, where the degraded line's ink fades unevenly.
    assert toned.clean[ink].std() <= clean[ink].std() * absorption + 1.0


def test_ingestion_keeps_the_paper_of_valid_and_test_pages_out_of_train(tmp_path: Path) -> None:
    """The issue's guarantee: textures of valid/test pages never reach training, page by page and for the
    bleed-through's ink too, as the manifest records them."""
    parameters = small_synthetic_parameters(train=30, valid=10, test=10)["data"]
    settings = paper_settings(tmp_path)
    data = DataConfig.model_validate({**parameters, "real_paper": settings.model_dump(mode="json")})
    reading = read_sources(data)
    dataset = ingest(assign_splits(reading.candidates, data), reading.rejects, data)
    manifest = dataset.manifest
    assert manifest["paper_page"].notna().all()

    library, _ = read_paper_library(settings, data.seed, data.split_fractions, data.max_image_pixels)
    pages_used = {split: set() for split in ("train", "valid", "test")}
    for row in manifest.itertuples():
        composition = json.loads(row.degradation_recipe)[0]
        assert composition["page"] == row.paper_page
        pages_used[row.split].add(row.paper_page)
        if composition["bleed_through"] is not None:
            pages_used[row.split].add(composition["bleed_through"]["page"])
    for split, pages in pages_used.items():
        assert {library.split_of_page[page] for page in pages} == {split}
    assert not pages_used["train"] & (pages_used["valid"] | pages_used["test"])


def test_ingestion_with_clean_ink_page_saves_the_toned_targets_and_the_same_degraded_images(tmp_path: Path) -> None:
    parameters = small_synthetic_parameters(train=8, valid=4, test=4)["data"]
    settings = paper_settings(tmp_path).model_dump(mode="json")
    ingested = {}
    for clean_ink in ("drawn", "page"):
        data = DataConfig.model_validate({**parameters, "real_paper": {**settings, "clean_ink": clean_ink}})
        reading = read_sources(data)
        ingested[clean_ink] = ingest(assign_splits(reading.candidates, data), reading.rejects, data)
    drawn, page = ingested["drawn"], ingested["page"]
    assert list(page.manifest["sample_id"]) == list(drawn.manifest["sample_id"])
    for row in page.manifest.itertuples():
        composition = json.loads(row.degradation_recipe)[0]
        assert composition["clean_ink"] == "page"
        assert np.array_equal(page.images[row.degraded_path], drawn.images[row.degraded_path])
        expected = ink_on_white(drawn.images[row.clean_path], composition["ink_absorption"])
        assert np.array_equal(page.images[row.clean_path], expected), row.sample_id


def test_real_paper_in_the_config_is_validated() -> None:
    with pytest.raises(ValueError, match="not a regular expression"):
        RealPaperConfig.model_validate({"folders": [{"kind": "page_pairs", "name": "a", "path": ".", "include": "("}]})
    with pytest.raises(ValueError, match="folders named a more than once"):
        RealPaperConfig.model_validate(
            {
                "folders": [
                    {"kind": "page_pairs", "name": "a", "path": "."},
                    {"kind": "page_scans", "name": "a", "path": "."},
                ]
            }
        )


def test_paper_library_of_no_page_names_the_bare_splits() -> None:
    with pytest.raises(RealPaperError, match=r"split\(s\) train"):
        PaperLibrary({"train": (), "valid": (flat_page(),), "test": ()}).check_covers(["train", "valid"])


@requires_shared_data("dibco_2009_2011")
def test_real_dibco_pages_give_paper_to_every_split() -> None:
    settings = RealPaperConfig.model_validate(
        {
            "folders": [
                {
                    "kind": "page_pairs",
                    "name": "dibco",
                    "path": SHARED_DATA / "dibco_2009_2011",
                    "include": "^2010-H0[1-5]",
                }
            ]
        }
    )
    library, rejects = read_paper_library(settings, 42, SplitFractions(), 10**8, workers=2)
    assert rejects == [] and len(library.split_of_page) == 5
    assert all(library.pages(split) for split in ("train", "valid", "test"))
    composed, recipe = compose_on_real_paper(
        render_clean_line(), library.pages("test"), settings, np.random.default_rng(1)
    )
    assert library.split_of_page[recipe["page"]] == "test" and composed.std() > 5


def test_clean_scans_paper_removed_makes_scanned_crops_ink_on_white_and_leaves_synthetic_lines(tmp_path: Path) -> None:
    from tests.conftest import write_line_png

    for index in range(3):
        write_line_png(tmp_path / "lines" / f"l{index}.png", width=200, height=40, seed=index)
        (tmp_path / "lines" / f"l{index}.txt").write_text(f"line {index}", encoding="utf-8")
    parameters = small_synthetic_parameters(train=2, valid=1, test=1)["data"]
    sources = [*parameters["sources"], {"kind": "line_folder", "name": "scans", "path": str(tmp_path / "lines")}]
    as_scanned = DataConfig.model_validate(
        {**parameters, "sources": sources, "split_fractions": {"train": 1.0, "valid": 0.0, "test": 0.0}}
    )
    removed = as_scanned.model_copy(update={"clean_scans": "paper_removed"})

    def clean_images(data: DataConfig) -> dict[str, np.ndarray]:
        reading = read_sources(data)
        dataset = ingest(assign_splits(reading.candidates, data), reading.rejects, data)
        return {row.sample_id: dataset.images[row.clean_path] for row in dataset.manifest.itertuples()}

    before, after = clean_images(as_scanned), clean_images(removed)
    for sample_id, image in after.items():
        if sample_id.startswith("scans:"):
            assert np.median(before[sample_id]) == 235 and np.median(image) == 255, "the scan's paper is gone"
            assert image.min() < 60, "its ink stays"
        else:
            assert np.array_equal(image, before[sample_id]), "a synthetic line is already ink on white"


def test_lines_on_real_paper_are_the_same_whatever_the_worker_count(tmp_path: Path) -> None:
    import pandas as pd

    parameters = small_synthetic_parameters(train=8, valid=3, test=3)["data"]
    settings = paper_settings(tmp_path).model_dump(mode="json")
    ingested = []
    for workers in (1, 2):
        data = DataConfig.model_validate({**parameters, "real_paper": settings, "num_workers": workers})
        reading = read_sources(data)
        ingested.append(ingest(assign_splits(reading.candidates, data), reading.rejects, data))
    one, two = ingested
    pd.testing.assert_frame_equal(one.manifest, two.manifest)
    assert all(np.array_equal(one.images[key], two.images[key]) for key in one.images)
