"""Optimisation options (learning rate, weight decay, warmup, label smoothing, gradient clipping) out of range are
one line naming the recipe key, before any data is read: not a traceback from torch.optim at the first step."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal_s2s.apps.cli import main
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.lit.seq2seq import Seq2SeqModule

TASKS = Path(__file__).resolve().parents[2] / "tasks"
DATES_RECIPE = TASKS / "translation" / "dates.yaml"
SEQ2SEQ = {"encoder": "text_lstm_tiny", "decoder": "transformer"}


def fit_error(tmp_path, capsys, *overrides: str) -> tuple[int, list[str]]:
    """``mms2s fit`` of the dates recipe with ``overrides``: its exit code and stderr's lines."""
    code = main(["fit", "--config", str(DATES_RECIPE), "--trainer.default_root_dir", str(tmp_path), *overrides])
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_negative_learning_rate_on_the_command_line_is_one_line_naming_the_key(tmp_path, capsys):
    code, lines = fit_error(tmp_path, capsys, "--model.init_args.lr", "-1")
    assert code == 1 and not any("Traceback" in line for line in lines)
    assert lines[-1] == "mms2s fit: model.init_args.lr must be a finite number > 0, got -1.0"
    assert not list(tmp_path.glob("version_*/checkpoints"))  # refused before training


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("--trainer.gradient_clip_val", "-1"), "trainer.gradient_clip_val must be a finite number >= 0 "
                                                "(0 or null: no clipping), got -1"),
        (("--trainer.gradient_clip_algorithm", "l2"), "trainer.gradient_clip_algorithm must be one of norm, value, "
                                                      "got 'l2'"),
    ],
)
def test_bad_gradient_clipping_is_one_line_naming_the_trainer_key(tmp_path, capsys, overrides, message):
    code, lines = fit_error(tmp_path, capsys, *overrides)
    assert code == 1 and lines[-1] == f"mms2s fit: {message}"
    assert not any("Traceback" in line for line in lines)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("lr", 0.0, "model.init_args.lr must be a finite number > 0, got 0.0"),
        ("lr", float("nan"), "model.init_args.lr must be a finite number > 0, got nan"),
        ("lr", float("inf"), "model.init_args.lr must be a finite number > 0, got inf"),
        ("weight_decay", -0.01, "model.init_args.weight_decay must be a finite number >= 0, got -0.01"),
        ("warmup_steps", -5, "model.init_args.warmup_steps must be an integer >= 0, got -5"),
        ("warmup_steps", 2.5, "model.init_args.warmup_steps must be an integer >= 0, got 2.5"),
        ("label_smoothing", -0.1, "model.init_args.label_smoothing must be a finite number >= 0, got -0.1"),
        ("label_smoothing", 1.0, r"model.init_args.label_smoothing must be in \[0, 1\), got 1.0"),
    ],
)
def test_text_module_refuses_optimisation_options_out_of_range(option, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Seq2SeqModule(**SEQ2SEQ, **{option: value})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("lr", -1e-3, "model.init_args.lr must be a finite number > 0, got -0.001"),
        ("weight_decay", float("inf"), "model.init_args.weight_decay must be a finite number >= 0, got inf"),
        ("warmup_steps", -1, "model.init_args.warmup_steps must be an integer >= 0, got -1"),
    ],
)
def test_segmentation_module_refuses_optimisation_options_out_of_range(option, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        SegmentationModule(encoder="segnet_basic", **{option: value})


def test_usable_optimisation_options_are_accepted():
    module = Seq2SeqModule(**SEQ2SEQ, lr=1, weight_decay=0, warmup_steps=0, label_smoothing=0.0)
    assert module.hparams.lr == 1 and module.hparams.warmup_steps == 0
    assert SegmentationModule(encoder="segnet_basic", lr=5e-4, weight_decay=0.0).hparams.weight_decay == 0.0
