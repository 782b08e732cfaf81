"""Training behaviour on a small real data set: the CTC pre-flight, strict recognizer loading, the device, the
blank convention, early stopping and checkpoints in the real loop, and the CTC gradient reaching the generator.

Every model is a real (tiny) torch model, every line a real PNG read through the LineImageStore, every label
encoded by a real Charset; only ``GanTrainer.validate`` is replaced in the early-stopping test, by a subclass
that returns a scripted history so the epochs the loop must pick can be computed by hand.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    BEST,
    LAST,
    CheckpointError,
    RecognizerCheckpoint,
    ReferenceRecognizers,
    TrainedRunConfig,
    best_of_metric,
    check_same_charset,
    checkpoint_file_name,
    load_checkpoint,
    load_gan_checkpoint,
    restore_weights,
    save_checkpoint,
)
from htr_pipeline.config import DataConfig, TrainingConfig
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import DeviceUnavailableError, resolve_device
from htr_pipeline.evaluation.page_validation import pages_to_validate_on
from htr_pipeline.evaluation.real_scans import RealPagePair
from htr_pipeline.metric_names import PAGE_MONITOR
from htr_pipeline.metrics import combined_score
from htr_pipeline.models import build_discriminator, build_generator, build_recognizer
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.scoring.lines import greedy_readings
from htr_pipeline.training.ctc_feasibility import InfeasibleSamplesError, feasibility_report
from htr_pipeline.training.data_loading import line_loader
from htr_pipeline.training.gan_training import BEST_PER_METRIC, EpochSums, GanModels, GanTrainer, train_gan
from htr_pipeline.training.losses import ctc_loss_per_sample
from htr_pipeline.training.runtime import MemoryTracker, seed_everything
from htr_pipeline.training.stages import (
    build_gan_models,
    gan_run_metadata,
    gan_stage,
    line_splits,
    load_recognizer,
    perceptual_feature_extractor,
    recognizer_stage,
)
from htr_pipeline.training.validation import ValidationMetrics, ValidationPages
from tests.conftest import SMOKE_GATE, TINY_JUDGE, small_synthetic_parameters
from tests.data.test_real_paper import write_page_pairs

CHECKPOINT_LAST = checkpoint_file_name(LAST)
CHECKPOINT_BEST = checkpoint_file_name(BEST)


def best_checkpoint_name(metric: str) -> str:
    return checkpoint_file_name(best_of_metric(metric))


LINE_HEIGHT_PX = 32
CPU = torch.device("cpu")
TRAIN_TEXTS = [
    "hello",
    "world",
    "moon",
    "paper",
    "ink blot",
    "old letter",
    "quill",
    "faded",
    "stain",
    "margin",
    "scribe",
    "copy",
    "pages",
    "ledger",
    "notes",
    "folio",
]
VALID_TEXTS = ["hello moon", "old ink", "paper", "letters", "quill pen", "faded", "margins", "scribe"]
TINY_TRAINING: dict[str, Any] = {
    "seed": 3,
    "device": "cpu",
    "epochs": 1,
    "batch_size": 4,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "patch", "channels": [8, 16]},
    "recognizer_pretraining": {"epochs": 1, "batch_size": 4, **SMOKE_GATE},
    "judge": TINY_JUDGE,
}


def training_parameters(**overrides: Any) -> dict[str, Any]:
    """The ``training`` section as a parameters file would hold it: tiny models, CPU, batch 4."""
    return {**TINY_TRAINING, **overrides}


def tiny_config(**overrides: Any) -> TrainingConfig:
    return TrainingConfig.model_validate(training_parameters(**overrides))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class LineData:
    manifest: pd.DataFrame
    store: LineImageStore
    charset: Charset


def render_clean_line(text: str) -> np.ndarray:
    """(32, width) uint8: black text on white paper, width a multiple of 4 in [64, 160]."""
    font = ImageFont.load_default(size=24)
    left, top, right, bottom = font.getbbox(text)
    width = min(max(math.ceil((right - left + 8) / 4) * 4, 64), 160)
    assert right - left + 8 <= width, f"{text!r} is too wide for a 160 px line"
    image = Image.new("L", (width, LINE_HEIGHT_PX), color=255)
    ImageDraw.Draw(image).text((4 - left, (LINE_HEIGHT_PX - (bottom - top)) // 2 - top), text, font=font, fill=0)
    return np.asarray(image, dtype=np.uint8)


def degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greyer paper, fainter ink and Gaussian noise."""
    faded = 40.0 + 0.75 * clean.astype(np.float64)
    noisy = faded + rng.normal(0.0, 25.0, size=clean.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def line_data(tmp_path_factory: pytest.TempPathFactory) -> LineData:
    """16 train + 8 valid real PNG line pairs with their manifest, the store that reads them, the charset."""
    root = tmp_path_factory.mktemp("lines")
    rng = np.random.default_rng(11)
    rows = []
    for split, texts in (("train", TRAIN_TEXTS), ("valid", VALID_TEXTS)):
        for index, text in enumerate(texts):
            sample_id = f"{split}_{index:02d}"
            clean = render_clean_line(text)
            for kind, image in (("clean", clean), ("degraded", degrade(clean, rng))):
                (root / kind).mkdir(exist_ok=True)
                Image.fromarray(image, mode="L").save(root / kind / f"{sample_id}.png")
            rows.append(
                {
                    "sample_id": sample_id,
                    "split": split,
                    "image_type": "line",
                    "transcription": text,
                    "width": clean.shape[1],
                    "height": clean.shape[0],
                    "clean_path": f"clean/{sample_id}.png",
                    "degraded_path": f"degraded/{sample_id}.png",
                }
            )
    return LineData(pd.DataFrame(rows), LineImageStore(root), Charset.from_texts(TRAIN_TEXTS))


@pytest.fixture(scope="module")
def recognizer_state(line_data: LineData) -> RecognizerCheckpoint:
    """The checkpoint stage 1 returns after one real pre-training epoch."""
    return recognizer_stage(line_data.manifest, line_data.store, line_data.charset, tiny_config(), MemoryTracker())


def build_models(config: TrainingConfig, line_data: LineData, recognizer_state: RecognizerCheckpoint) -> GanModels:
    """The models as ``gan_stage`` builds them: a strictly loaded, frozen recognizer and fresh G and D."""
    seed_everything(config.seed)
    recognizer = load_recognizer(recognizer_state, line_data.charset, config.recognizer, Path("recognizer.pt"))
    models = GanModels(
        generator=build_generator(config.generator),
        discriminator=build_discriminator(config.discriminator, line_data.charset.num_classes),
        recognizer=recognizer,
        feature_extractor=perceptual_feature_extractor(config, recognizer, CPU),
    )
    recognizer.requires_grad_(False)
    return models


def weights_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint read the safe way: only tensors and plain containers are allowed in it."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------- 1. CTC pre-flight


def preflight_manifest() -> pd.DataFrame:
    """Lines chosen so that feasibility (T >= L + R, T = ceil(width / 4)) is decided by hand.

    sample      split  width  T = ceil(w/4)  text                L   R  L + R  feasible
    fits        train   64    16            "hello"              5   1    6    yes
    too_long    train   64    16            "abcdefghijklmnopq"  17  0   17    no: longer than T
    repeats     valid   16     4            "moon"               4   1    5    no: only because of the "oo"
    rounded_up  train   18     5            "moon"               4   1    5    yes, by rounding T up (floor: 4)
    test_line   test    16     4            "abcdefghijklmnopq"  17  0   17    no, but test lines are not checked
    page        train  640   160            (30 symbols)         -   -    -    a page: left to page training
    """
    rows = [
        ("fits", "train", "line", 64, "hello"),
        ("too_long", "train", "line", 64, "abcdefghijklmnopq"),
        ("repeats", "valid", "line", 16, "moon"),
        ("rounded_up", "train", "line", 18, "moon"),
        ("test_line", "test", "line", 16, "abcdefghijklmnopq"),
        ("page", "train", "page", 640, "a" * 30),
    ]
    return pd.DataFrame(
        [
            {
                "sample_id": sample_id,
                "split": split,
                "image_type": image_type,
                "transcription": text,
                "width": width,
                "height": LINE_HEIGHT_PX,
                "clean_path": f"clean/{sample_id}.png",
                "degraded_path": f"degraded/{sample_id}.png",
            }
            for sample_id, split, image_type, width, text in rows
        ]
    )


def test_preflight_names_the_infeasible_lines_and_the_downsampling_that_fits():
    # Largest factor fitting every train/valid line: too_long needs T >= 17 -> ceil(64 / f) >= 17 -> f <= 2
    # (f = 4 gives 16); repeats needs ceil(16 / f) >= 5 -> f <= 2 (f = 4 gives 4). fits and rounded_up allow 8
    # and 4. So 2.
    with pytest.raises(InfeasibleSamplesError) as raised:
        line_splits(preflight_manifest(), tiny_config())
    message = str(raised.value)
    assert "2 of 4 samples" in message
    assert "too_long (train): width 64 px -> T=16, L=17, repeats=0" in message
    assert "repeats (valid): width 16 px -> T=4, L=4, repeats=1" in message
    assert "training.recognizer.width_downsampling=2" in message
    assert "drop_infeasible" in message
    for feasible_or_unchecked in ("fits", "rounded_up", "test_line", "page"):
        assert feasible_or_unchecked not in message


def test_feasibility_report_counts_repeats_and_rounds_time_steps_up():
    lines = preflight_manifest().query("image_type == 'line' and split != 'test'")
    report = feasibility_report(lines, width_downsampling=4)
    table = report.table.set_index("sample_id")
    assert table["time_steps"].to_dict() == {"fits": 16, "too_long": 16, "repeats": 4, "rounded_up": 5}
    assert table["repeats"].to_dict() == {"fits": 1, "too_long": 0, "repeats": 1, "rounded_up": 1}
    assert table["slack"].to_dict() == {"fits": 10, "too_long": -1, "repeats": -1, "rounded_up": 0}
    assert report.largest_feasible_downsampling() == 2
    assert feasibility_report(lines.query("sample_id != 'too_long'"), 4).largest_feasible_downsampling() == 2
    assert feasibility_report(lines.query("sample_id == 'fits'"), 4).largest_feasible_downsampling() == 8


def test_drop_infeasible_drops_and_lists_them_and_keeps_the_rest():
    splits = line_splits(preflight_manifest(), tiny_config(drop_infeasible=True))
    assert splits.dropped_infeasible == ["too_long", "repeats"]
    assert splits.train["sample_id"].tolist() == ["fits", "rounded_up"]
    assert splits.valid.empty
    assert splits.pages_excluded == 1


def test_the_real_recognizer_gives_the_time_steps_the_preflight_counts(line_data: LineData):
    # An 18 px line is padded to the batch width (a multiple of 4); the recognizer reads 20 / 4 = 5 steps, and
    # the fifth still covers the line's real columns 16-17, so the pre-flight's T = ceil(18 / 4) = 5 is right.
    config = tiny_config()
    recognizer = build_recognizer(config.recognizer, line_data.charset.num_classes).eval()
    with torch.no_grad():
        logits = recognizer(torch.ones(1, 1, LINE_HEIGHT_PX, 20)).logits
    assert logits.shape[1] == ctc_time_steps(18, 4) == 5


def test_the_recognizers_own_time_step_count_agrees_with_the_preflight(line_data: LineData):
    recognizer = build_recognizer(tiny_config().recognizer, line_data.charset.num_classes)
    widths = torch.tensor([16, 18, 64, 66])
    assert recognizer.time_steps(widths).tolist() == ctc_time_steps(widths, 4).tolist() == [4, 5, 16, 17]


# ------------------------------------------------------------------------------- 2. strict recognizer loading


def test_stage_one_checkpoint_loads_back_into_an_identical_recognizer(
    line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    assert recognizer_state.config == tiny_config().recognizer
    assert recognizer_state.charset == line_data.charset
    assert recognizer_state.details["epochs_run"] == 1
    recognizer = load_recognizer(recognizer_state, line_data.charset, tiny_config().recognizer, Path("recognizer.pt"))
    assert same_tensors(weights_of(recognizer), recognizer_state.weights)


def test_a_charset_with_one_symbol_more_is_refused_and_the_symbol_named(
    line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    charset_here = Charset.from_texts([*TRAIN_TEXTS, "zebra"])
    assert set(charset_here.symbols) - set(line_data.charset.symbols) == {"z"}
    with pytest.raises(CheckpointError, match=r"only in the checkpoint: \[\], only here: \['z'\]"):
        load_recognizer(recognizer_state, charset_here, tiny_config().recognizer, Path("recognizer.pt"))


def test_the_same_symbols_in_another_order_are_refused(line_data: LineData):
    reordered = Charset(symbols=tuple(reversed(line_data.charset.symbols)))
    with pytest.raises(CheckpointError, match="different order"):
        check_same_charset(line_data.charset, reordered, Path("recognizer.pt"))


def test_other_recognizer_settings_are_refused(line_data: LineData, recognizer_state: RecognizerCheckpoint):
    wider = tiny_config(recognizer={**TINY_TRAINING["recognizer"], "lstm_hidden": 32})
    with pytest.raises(CheckpointError, match=r"'lstm_hidden': 16.*differ from training.recognizer.*'lstm_hidden': 32"):
        load_recognizer(recognizer_state, line_data.charset, wider.recognizer, Path("recognizer.pt"))


def test_a_missing_weight_is_an_error_never_a_partial_load(line_data: LineData, recognizer_state: RecognizerCheckpoint):
    incomplete = dataclasses.replace(recognizer_state, weights=dict(recognizer_state.weights))
    del incomplete.weights["classifier.bias"]
    with pytest.raises(CheckpointError, match=r"(?s)recognizer.pt: the recognizer weights.*classifier\.bias"):
        load_recognizer(incomplete, line_data.charset, tiny_config().recognizer, Path("recognizer.pt"))


def test_a_misshaped_weight_is_an_error(line_data: LineData, recognizer_state: RecognizerCheckpoint):
    misshaped = dataclasses.replace(recognizer_state, weights=dict(recognizer_state.weights))
    misshaped.weights["classifier.bias"] = torch.zeros(line_data.charset.num_classes + 1)
    with pytest.raises(CheckpointError, match=r"classifier\.bias"):
        load_recognizer(misshaped, line_data.charset, tiny_config().recognizer, Path("recognizer.pt"))


def test_a_refused_checkpoint_leaves_the_module_as_it_was(line_data: LineData, recognizer_state: RecognizerCheckpoint):
    torch.manual_seed(5)
    module = build_recognizer(tiny_config().recognizer, line_data.charset.num_classes)
    before = weights_of(module)
    incomplete = dict(recognizer_state.weights)
    del incomplete["classifier.bias"]
    with pytest.raises(CheckpointError):
        restore_weights(module, incomplete, "recognizer", Path("recognizer.pt"))
    assert same_tensors(weights_of(module), before)


def test_saved_checkpoint_round_trips_safely_and_loads_through_the_stage(
    tmp_path: Path, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    path = tmp_path / "models" / "recognizer.pt"
    save_checkpoint(recognizer_state.to_state(), path)
    assert [p.name for p in path.parent.iterdir()] == ["recognizer.pt"]  # no temporary file left behind
    stored = read_checkpoint(path)
    assert same_tensors(stored["recognizer"], recognizer_state.weights)
    assert stored["charset"] == recognizer_state.charset.to_dict()
    loaded = load_checkpoint(path, "training.recognizer_checkpoint")
    assert loaded.keys() == stored.keys()

    with_checkpoint = tiny_config(recognizer_checkpoint=str(path))
    tracker = MemoryTracker()
    state = recognizer_stage(line_data.manifest, line_data.store, line_data.charset, with_checkpoint, tracker)
    assert same_tensors(state.weights, recognizer_state.weights)
    # Loaded, not pre-trained again: only the gate's one reading of the valid lines is logged.
    assert list(tracker.history) == ["recognizer/val_cer"] and len(tracker.history["recognizer/val_cer"]) == 1
    assert state.details["best_val_cer"] == tracker.history["recognizer/val_cer"][0][1]

    other_charset = Charset.from_texts([*TRAIN_TEXTS, "zebra"])
    with pytest.raises(CheckpointError, match="another charset"):
        recognizer_stage(line_data.manifest, line_data.store, other_charset, with_checkpoint, MemoryTracker())


def test_a_missing_checkpoint_names_the_setting_that_points_to_it(tmp_path: Path, line_data: LineData):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointError, match=r"training.recognizer_checkpoint: checkpoint '.*nowhere.pt'"):
        load_checkpoint(missing, "training.recognizer_checkpoint")
    with pytest.raises(CheckpointError, match=r"training\.recognizer_checkpoint"):
        recognizer_stage(
            line_data.manifest,
            line_data.store,
            line_data.charset,
            tiny_config(recognizer_checkpoint=str(missing)),
            MemoryTracker(),
        )


# ------------------------------------------------------------------------------------------------ 3. device


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: 'cuda' resolves to it, nothing to refuse")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run(line_data: LineData):
    with pytest.raises(DeviceUnavailableError, match=r"training.device is 'cuda'"):
        resolve_device("cuda", "training.device")
    with pytest.raises(DeviceUnavailableError, match=r"evaluation.device is 'cuda'.*Use evaluation.device: auto"):
        resolve_device("cuda", "evaluation.device")
    assert resolve_device("auto", "training.device") == CPU
    assert resolve_device("cpu", "training.device") == CPU
    tracker = MemoryTracker()
    with pytest.raises(DeviceUnavailableError):
        recognizer_stage(line_data.manifest, line_data.store, line_data.charset, tiny_config(device="cuda"), tracker)
    assert tracker.history == {}  # refused before any training


# ------------------------------------------------------------------------------------ 4. blank convention


def best_path_logits(charset: Charset, best_path: list[int], confidence: float = 12.0) -> torch.Tensor:
    """(time, classes) logits with ``confidence`` on one class per step and 0 elsewhere."""
    logits = torch.zeros(len(best_path), charset.num_classes)
    logits[torch.arange(len(best_path)), torch.tensor(best_path)] = confidence
    return logits


def test_ctc_and_greedy_decoding_share_the_charsets_blank(line_data: LineData):
    charset = line_data.charset
    blank = charset.blank_index
    h, e, ell, o, w = charset.encode("helow")
    # "hello" over 8 steps (a blank between the two l's, or CTC would merge them), then 4 padding steps
    # reading "w w" that lie beyond the line's 32 px (8 time steps at width_downsampling 4).
    spelled = [h, blank, e, ell, blank, ell, o, blank]
    logits = best_path_logits(charset, [*spelled, w, blank, w, w])
    labels = torch.tensor([charset.encode("hello")])
    input_lengths, label_lengths = torch.tensor([len(spelled)]), torch.tensor([5])

    ctc = ctc_loss_per_sample(logits[None], labels, input_lengths, label_lengths, blank=blank)
    # Each step puts e^12 / (e^12 + C - 1) ~ 1 - 1.2e-4 on its class: the path alone gives ~ 1e-3 / 5 symbols.
    assert float(ctc.per_sample[0]) < 0.05
    assert greedy_readings(logits[None], torch.tensor([32]), 4, charset) == ["hello"]
    # Over all 12 steps the padding would be read too: w, blank, w, w -> "ww".
    assert greedy_readings(logits[None], torch.tensor([48]), 4, charset) == ["helloww"]

    # The previous system's off-by-one: blank last in one place, symbols shifted down by one. Scored that way, the same
    # logits read as another text, and the loss is large.
    off_by_one = ctc_loss_per_sample(
        logits[None], labels - 1, input_lengths, label_lengths, blank=charset.num_classes - 1
    )
    assert float(off_by_one.per_sample[0]) > 1.0


# ---------------------------------------------------------------------------- 5. early stopping in the loop


def scripted_history() -> list[ValidationMetrics]:
    """Validation results of epochs 1..8, chosen so that every metric picks another epoch.

    epoch        1      2      3      4      5      6      7      8
    cer        0.90   0.70   0.60   0.50   0.62   0.65   0.10   0.10
    psnr_db    20     21     29     20     29.5   25     35     35
    ssim       0.50   0.90   0.60   0.70   0.80   0.85   0.95   0.95
    combined  -25    -14     -1     -5     -1.5   -7.5   30     30     (psnr - 50 x cer)

    Monitor val/cer, patience 2: epochs 1-4 improve, 5 and 6 do not -> stop after epoch 6. Within 1..6 the best
    epochs are: cer 4, psnr 5, ssim 2, combined 3 (like the previous system, combined and CER disagree). Epochs 7-8
    are best at everything, so a loop that ignored early stopping would show it.
    """
    cer = [0.90, 0.70, 0.60, 0.50, 0.62, 0.65, 0.10, 0.10]
    psnr = [20.0, 21.0, 29.0, 20.0, 29.5, 25.0, 35.0, 35.0]
    ssim = [0.50, 0.90, 0.60, 0.70, 0.80, 0.85, 0.95, 0.95]
    return [
        ValidationMetrics(cer=c, wer=c, psnr_db=p, ssim=s, combined=combined_score(p, c, 50.0), lines=8)
        for c, p, s in zip(cer, psnr, ssim, strict=True)
    ]


class ScriptedValidationTrainer(GanTrainer):
    """The real trainer (steps, optimisers, trackers, checkpoints) with validation results read from a script."""

    def __init__(self, *args: Any, history: list[ValidationMetrics], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.history = history

    def validate(self, loader: Any) -> ValidationMetrics:
        return self.history[self.epoch - 1]


@pytest.mark.parametrize("restore_best_weights", [True, False])
def test_early_stopping_stops_the_loop_and_each_checkpoint_holds_its_epoch(
    tmp_path: Path, line_data: LineData, recognizer_state: RecognizerCheckpoint, restore_best_weights: bool
):
    config = tiny_config(
        epochs=8,
        monitor="val/cer",
        early_stopping={"patience": 2, "restore_best_weights": restore_best_weights},
    )
    splits = line_splits(line_data.manifest, config)
    train_loader = line_loader(splits.train, line_data.store, line_data.charset, config, 4, training=True, device=CPU)
    models = build_models(config, line_data, recognizer_state)
    trainer = ScriptedValidationTrainer(models, line_data.charset, config, CPU, history=scripted_history())
    tracker = MemoryTracker()

    outcome = train_gan(trainer, train_loader, [], tmp_path, None, tracker)

    assert (outcome.epochs_run, outcome.stopped_early, trainer.epoch) == (6, True, 6)
    assert [epoch for epoch, _ in tracker.history["val/cer"]] == [1, 2, 3, 4, 5, 6]
    expected_best = {"val/cer": 4, "val/psnr": 5, "val/ssim": 2, "val/combined": 3}
    assert outcome.best_epoch_per_metric == expected_best
    saved_epochs = {path.name: read_checkpoint(path)["epoch"] for path in tmp_path.glob("*.pt")}
    assert saved_epochs == {
        CHECKPOINT_LAST: 6,
        CHECKPOINT_BEST: 4,
        **{best_checkpoint_name(metric): epoch for metric, epoch in expected_best.items()},
    }
    best_generator = read_checkpoint(tmp_path / CHECKPOINT_BEST)["generator"]
    last_generator = read_checkpoint(tmp_path / CHECKPOINT_LAST)["generator"]
    assert not same_tensors(best_generator, last_generator)  # two more epochs of training lie between them
    kept_generator = best_generator if restore_best_weights else last_generator
    assert same_tensors(weights_of(trainer.models.generator), kept_generator)


def test_a_run_resumed_from_best_pt_keeps_it_against_a_worse_epoch(
    tmp_path: Path, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    # Epochs 1-4 of the script improve CER every time (0.90, 0.70, 0.60, 0.50): best.pt holds epoch 4.
    config = tiny_config(epochs=4, monitor="val/cer", early_stopping={"patience": 2})
    splits = line_splits(line_data.manifest, config)
    train_loader = line_loader(splits.train, line_data.store, line_data.charset, config, 4, training=True, device=CPU)
    trainer = ScriptedValidationTrainer(
        build_models(config, line_data, recognizer_state), line_data.charset, config, CPU, history=scripted_history()
    )
    train_gan(trainer, train_loader, [], tmp_path, None, MemoryTracker())
    best_path = tmp_path / CHECKPOINT_BEST
    assert read_checkpoint(best_path)["epoch"] == 4

    # Resume from best.pt (as gan_stage does with training.resume_from) for an epoch 5 with CER 0.55: worse
    # than epoch 4's 0.50, so best.pt must still hold epoch 4.
    config = tiny_config(epochs=5, monitor="val/cer", early_stopping={"patience": 2})
    worse = ValidationMetrics(cer=0.55, wer=0.55, psnr_db=20.0, ssim=0.5, combined=20.0 - 50 * 0.55, lines=8)
    resumed = ScriptedValidationTrainer(
        build_models(config, line_data, recognizer_state),
        line_data.charset,
        config,
        CPU,
        history=[*scripted_history()[:4], worse],
    )
    resumed.restore(load_gan_checkpoint(best_path, "training.resume_from"), best_path)
    assert resumed.epoch == 4
    train_gan(resumed, train_loader, [], tmp_path, None, MemoryTracker())
    assert read_checkpoint(tmp_path / CHECKPOINT_LAST)["epoch"] == 5
    assert read_checkpoint(best_path)["epoch"] == 4
    assert read_checkpoint(best_path)["best_by_monitor"]["best_epoch"] == 4


# ------------------------------------------------------------------------- 6. checkpoint completeness, resume


@dataclass
class StageRun:
    summary: dict[str, Any]
    folder: Path
    tracker: MemoryTracker
    tracked_run_ids: list[str]


def run_gan_stage(
    line_data: LineData,
    recognizer_state: RecognizerCheckpoint,
    folder: Path,
    run_id: str,
    validation_pages: ValidationPages | None = None,
    **overrides: Any,
) -> StageRun:
    """``gan_stage`` called as the pipeline node calls it, with the run metadata the node builds."""
    training = training_parameters(
        **{
            "early_stopping": {"patience": 3},
            "adaptive_balancing": {"target_ctc_share": 0.65, "adaptation_rate": 0.15},
            **overrides,
        }
    )
    config = TrainingConfig.model_validate(training)
    data = small_synthetic_parameters()["data"]
    run_config = TrainedRunConfig(data=DataConfig.model_validate(data), training=config)
    run_metadata = gan_run_metadata(line_data.charset, run_config, ReferenceRecognizers(line_data.charset))
    tracker = MemoryTracker()
    tracked_run_ids: list[str] = []

    def tracker_for_run(mlflow_run_id: str) -> MemoryTracker:
        tracked_run_ids.append(mlflow_run_id)
        return tracker

    summary = gan_stage(
        line_data.manifest,
        line_data.store,
        line_data.charset,
        recognizer_state,
        config,
        folder,
        run_metadata,
        tracker_for_run,
        run_id,
        validation_pages,
    )
    return StageRun(summary, folder, tracker, tracked_run_ids)


@pytest.fixture(scope="module")
def one_epoch_run(
    tmp_path_factory: pytest.TempPathFactory, line_data: LineData, recognizer_state: RecognizerCheckpoint
) -> StageRun:
    return run_gan_stage(line_data, recognizer_state, tmp_path_factory.mktemp("one_epoch"), "run-first", epochs=1)


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tensors_in(item)


def test_an_epochs_checkpoint_is_written_once_whatever_its_names(
    tmp_path: Path, line_data: LineData, recognizer_state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    """The first epoch is the best by every metric: one write, and every other name links to that file."""
    writes: list[str] = []
    save = torch.save

    def counted_save(state: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        writes.append(str(file))
        save(state, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", counted_save)
    run_gan_stage(line_data, recognizer_state, tmp_path, "run-once", epochs=1)
    names = sorted(path.name for path in tmp_path.glob("*.pt"))
    line_metrics = [metric for metric in BEST_PER_METRIC if metric != PAGE_MONITOR]  # no real pages to validate on
    assert names == sorted([CHECKPOINT_LAST, CHECKPOINT_BEST, *(best_checkpoint_name(m) for m in line_metrics)])
    assert len(writes) == 1
    assert len({(tmp_path / name).read_bytes() for name in names}) == 1
    assert read_checkpoint(tmp_path / CHECKPOINT_LAST)["epoch"] == 1


def test_last_checkpoint_holds_everything_a_resume_needs(one_epoch_run: StageRun, line_data: LineData):
    last = read_checkpoint(one_epoch_run.folder / CHECKPOINT_LAST)
    assert {
        "generator",
        "discriminator",
        "recognizer",
        "generator_optimizer",
        "discriminator_optimizer",
        "scaler",
        "balancer",
        "early_stopping",
        "best_by_monitor",
        "best_per_metric",
        "generator_gradients",
        "discriminator_gradients",
        "rng",
        "epoch",
        "step",
        "mlflow_run_id",
        "charset",
        "config",
    } <= set(last)
    assert (last["epoch"], last["step"], last["mlflow_run_id"]) == (1, 4, "run-first")  # 16 lines / batch 4
    assert Charset.from_dict(last["charset"]) == line_data.charset
    assert last["config"]["training"]["early_stopping"]["patience"] == 3
    assert last["config"]["data"] == DataConfig.model_validate(small_synthetic_parameters()["data"]).model_dump(
        mode="json"
    )
    generator_parameters = len(list(build_generator(tiny_config().generator).parameters()))
    assert len(last["generator_optimizer"]["state"]) == generator_parameters  # Adam moments of every parameter
    assert last["generator_optimizer"]["state"][0]["exp_avg"].abs().sum() > 0
    assert last["discriminator_optimizer"]["state"]
    assert last["balancer"]["kind"] == "adaptive"
    assert last["balancer"]["weight_ctc"] != 1.0  # the epoch-end update happened and was kept
    assert last["early_stopping"]["epochs_without_improvement"] == 0
    assert last["early_stopping"]["best"]["best_epoch"] == last["best_by_monitor"]["best_epoch"] == 1
    assert {metric: state["best_epoch"] for metric, state in last["best_per_metric"].items()} == {
        "val/cer": 1,
        "val/psnr": 1,
        "val/ssim": 1,
        "val/combined": 1,
    }
    assert last["generator_gradients"]["steps_recorded"] == 4
    assert len(last["generator_gradients"]["global_norm_history"]) == 4
    assert last["discriminator_gradients"]["steps_recorded"] == 4
    assert last["rng"]["torch"].dtype == torch.uint8
    assert all(t.device.type == "cpu" for t in tensors_in(last))
    generator = build_generator(tiny_config().generator)
    restore_weights(generator, last["generator"], "generator", one_epoch_run.folder / CHECKPOINT_LAST)


def test_the_stage_summary_and_tracked_metrics_of_one_epoch(one_epoch_run: StageRun):
    summary, tracker = one_epoch_run.summary, one_epoch_run.tracker
    assert summary["epochs_run"] == 1
    assert (summary["train_lines"], summary["valid_lines"], summary["dropped_infeasible"]) == (16, 8, [])
    assert summary["mlflow_run_id"] == "run-first"
    assert one_epoch_run.tracked_run_ids == ["run-first"]
    assert [step for step, _ in tracker.history["val_degraded/cer"]] == [0]  # the baseline before training
    assert [step for step, _ in tracker.history["val/cer"]] == [1]
    assert math.isfinite(tracker.history["train/ctc_loss"][0][1])
    assert "gradients/epoch_001.json" in tracker.documents
    assert {path.name for path in one_epoch_run.folder.iterdir()} == {
        CHECKPOINT_LAST,
        CHECKPOINT_BEST,
        *(best_checkpoint_name(metric) for metric in ("val/cer", "val/psnr", "val/ssim", "val/combined")),
    }


def test_a_resumed_run_matches_an_uninterrupted_one(
    tmp_path: Path, one_epoch_run: StageRun, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    uninterrupted = run_gan_stage(line_data, recognizer_state, tmp_path / "uninterrupted", "run-whole", epochs=2)
    resumed = run_gan_stage(
        line_data,
        recognizer_state,
        tmp_path / "resumed",
        "run-new",
        epochs=2,
        resume_from=str(one_epoch_run.folder / CHECKPOINT_LAST),
    )
    assert resumed.tracked_run_ids == ["run-first"]  # logs into the run it continues
    assert (resumed.summary["mlflow_run_id"], resumed.summary["epochs_run"]) == ("run-first", 2)
    assert [step for step, _ in resumed.tracker.history["val/cer"]] == [2]
    whole = read_checkpoint(uninterrupted.folder / CHECKPOINT_LAST)
    continued = read_checkpoint(resumed.folder / CHECKPOINT_LAST)
    assert (continued["epoch"], continued["step"]) == (whole["epoch"], whole["step"]) == (2, 8)
    for model in ("generator", "discriminator", "recognizer"):
        assert same_tensors(continued[model], whole[model]), model
    for key in ("balancer", "early_stopping", "best_by_monitor", "best_per_metric", "generator_gradients"):
        assert continued[key] == whole[key], key
    assert resumed.tracker.history["val/psnr"][0][1] == uninterrupted.tracker.history["val/psnr"][1][1]


def test_a_run_resumed_with_real_pages_to_validate_on_scores_them_from_its_next_epoch(
    tmp_path: Path, one_epoch_run: StageRun, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    """A checkpoint from a run without pages (or from before page validation) has no page tracker: it starts."""
    folder = write_page_pairs(tmp_path / "pages", ["v1", "v2"])
    pages = pages_to_validate_on(
        [
            RealPagePair(f"pages:{stem}", folder / "images" / f"{stem}.png", folder / "gt" / f"{stem}_gt.png")
            for stem in ("v1", "v2")
        ]
    )
    resumed = run_gan_stage(
        line_data,
        recognizer_state,
        tmp_path / "resumed",
        "run-new",
        pages,
        epochs=2,
        resume_from=str(one_epoch_run.folder / CHECKPOINT_LAST),
    )
    ((epoch, value),) = resumed.tracker.history[PAGE_MONITOR]
    assert epoch == 2 and 0.0 <= value <= 100.0
    assert resumed.summary["best_epoch_per_metric"][PAGE_MONITOR] == 2
    assert resumed.summary["validation_pages"] == ["pages:v1", "pages:v2"]
    assert 50.0 < resumed.summary["validation_pages_f_measure_scans"] < 100.0
    assert (resumed.folder / best_checkpoint_name(PAGE_MONITOR)).exists()


def test_balancer_curves_are_logged_only_with_adaptive_balancing_and_every_step_norm_is_kept(
    tmp_path: Path, one_epoch_run: StageRun, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    assert "adaptive/weight_ctc" in one_epoch_run.tracker.history
    fixed = run_gan_stage(
        line_data, recognizer_state, tmp_path / "fixed", "run-fixed", epochs=1, adaptive_balancing=None
    )
    assert not [name for name in fixed.tracker.history if name.startswith("adaptive/")]
    generator = one_epoch_run.tracker.documents["gradients/epoch_001.json"]["generator"]
    assert len(generator["global_norms"]) == generator["steps"] > 0
    assert max(generator["global_norms"]) == pytest.approx(generator["max_global_norm"], rel=1e-3)


# --------------------------------------------------------------------- 7. the CTC gradient reaches the generator


def first_training_batch(config: TrainingConfig, line_data: LineData) -> LineBatch:
    splits = line_splits(line_data.manifest, config)
    loader = line_loader(splits.train, line_data.store, line_data.charset, config, 4, training=True, device=CPU)
    loader.batch_sampler.set_epoch(1)
    return next(iter(loader))


ONLY_CTC = {"pixel": 0.0, "adversarial": 0.0, "ctc": 1.0, "recognition_feature": 0.0, "perceptual": 0.0}
NOTHING = {**ONLY_CTC, "ctc": 0.0}


@pytest.mark.parametrize(
    ("weights", "ctc_ceiling", "generator_moves"),
    [
        pytest.param(ONLY_CTC, None, True, id="ctc-only"),
        pytest.param(ONLY_CTC, 1e-3, True, id="ctc-only-every-sample-above-the-ceiling"),
        pytest.param(NOTHING, None, False, id="all-weights-zero"),
    ],
)
def test_the_ctc_term_alone_trains_the_generator_through_a_frozen_recognizer(
    line_data: LineData,
    recognizer_state: RecognizerCheckpoint,
    weights: dict[str, float],
    ctc_ceiling: float | None,
    generator_moves: bool,
):
    config = tiny_config(losses={"weights": weights, "ctc_ceiling": ctc_ceiling})
    models = build_models(config, line_data, recognizer_state)
    trainer = GanTrainer(models, line_data.charset, config, CPU)
    models.generator.train()
    models.recognizer.eval()  # frozen, as train_epoch leaves it
    batch = first_training_batch(config, line_data)
    generator_before, discriminator_before = weights_of(models.generator), weights_of(models.discriminator)
    recognizer_before = weights_of(models.recognizer)
    sums = EpochSums()

    trainer.train_step(batch, ctc_factor=1.0, sums=sums)

    assert not same_tensors(weights_of(models.discriminator), discriminator_before)  # the step did run
    assert same_tensors(weights_of(models.recognizer), recognizer_before)  # frozen: weights and BN statistics
    generator_moved = not same_tensors(weights_of(models.generator), generator_before)
    assert generator_moved == generator_moves
    losses = sums.means()
    assert losses["ctc_loss_raw"] > 0.1  # a one-epoch recognizer misreads the degraded lines
    assert losses["ctc_infinite_samples"] == 0
    if ctc_ceiling is not None:
        assert losses["ctc_ceiling_hits"] == len(batch.sample_ids)
        assert losses["ctc_loss"] == pytest.approx(ctc_ceiling)
    generator_gradient_norm = trainer.generator_gradients.summarise().max_global_norm
    if generator_moves:
        assert generator_gradient_norm > 0
    else:
        assert generator_gradient_norm == 0


def test_channels_last_changes_the_memory_layout_not_the_numbers(
    tmp_path: Path, one_epoch_run: StageRun, line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    fast = run_gan_stage(line_data, recognizer_state, tmp_path, "run-first", epochs=1, speed={"channels_last": True})
    for metric in ("val/psnr", "val/ssim", "val/cer", "train/g_loss"):
        (step, value), (expected_step, expected) = *fast.tracker.history[metric], *one_epoch_run.tracker.history[metric]
        assert step == expected_step and value == pytest.approx(expected, rel=1e-4), metric
    default_keys = set(read_checkpoint(one_epoch_run.folder / CHECKPOINT_LAST)["generator"])
    assert set(read_checkpoint(tmp_path / CHECKPOINT_LAST)["generator"]) == default_keys


@pytest.mark.slow
def test_compiled_models_keep_their_checkpoint_keys_and_compute_what_eager_models_do(
    line_data: LineData, recognizer_state: RecognizerCheckpoint
):
    torch.manual_seed(0)
    compiled = build_gan_models(
        recognizer_state, line_data.charset, tiny_config(speed={"compile": True}), torch.device("cpu")
    )
    torch.manual_seed(0)
    plain = build_gan_models(recognizer_state, line_data.charset, tiny_config(), torch.device("cpu"))
    assert list(compiled.generator.state_dict()) == list(plain.generator.state_dict())
    assert list(compiled.discriminator.state_dict()) == list(plain.discriminator.state_dict())
    degraded = torch.rand(2, 1, 32, 128)
    for model in (compiled.generator, plain.generator):
        model(degraded).mean().backward()
    torch.testing.assert_close(compiled.generator(degraded), plain.generator(degraded), rtol=1e-4, atol=1e-5)
    for (name, compiled_weight), plain_weight in zip(
        compiled.generator.named_parameters(), plain.generator.parameters(), strict=True
    ):
        torch.testing.assert_close(compiled_weight.grad, plain_weight.grad, rtol=1e-3, atol=1e-6, msg=name)
