"""The typed checkpoint header: a lossless round trip through plain data for every task, first-layout
headers upgraded, the training silence of headers that predate it read from their recipe, newer or
malformed ones refused in one line."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from checkpoint_helpers import segmentation_header, text_header

from multimodal_s2s.checkpoint import (
    CHECKPOINT_KEY,
    DATAMODULE_HPARAMS_KEY,
    FORMAT_VERSION,
    AudioPreprocessing,
    CheckpointError,
    CheckpointHeader,
    ImagePreprocessing,
    Task,
    TrainingData,
    read_checkpoint,
    same_model,
)


@pytest.mark.parametrize("task", list(Task))
def test_every_tasks_header_survives_plain_data(task):
    header = segmentation_header() if task == Task.SEGMENTATION else text_header(task)
    header.metrics = {"val/metric": 0.5}
    again = CheckpointHeader.from_dict(header.to_dict())
    assert again.to_dict() == header.to_dict() and same_model(again, header)
    assert again.task == task and again.metrics == {"val/metric": 0.5}


def test_first_layout_headers_are_upgraded():
    segmentation = segmentation_header().to_dict()
    old_segmentation = {
        "task": "segmentation", "model": segmentation["model"], "class_names": ["bg", "cat", "dog"],
        "palette": [[0, 0, 0], [128, 0, 0], [0, 128, 0]], "ignore_index": 255, "class_weights": [0.5, 1.0, 2.0],
        "preprocess": {"image_size": [32, 48], "mean": [0.5] * 3, "std": [0.25] * 3},
    }
    header = CheckpointHeader.from_dict(old_segmentation)
    assert header.labels.class_weights == (0.5, 1.0, 2.0) and header.preprocessing.image_size == (32, 48)
    assert header.data == TrainingData("not recorded")
    asr = text_header(Task.ASR).to_dict()
    old_asr = {
        "task": "seq2seq", "model": asr["model"], "tokenizer": asr["tokenizer"], "source_tokenizer": None,
        "preprocess": {"task": "asr", "format": "espeak", "tokenizer": "char", "sample_rate": 16000,
                       "max_seconds": 4.2, "median_seconds": 2.0, "tokens_per_second": 14.0},
        "decoding": {"beam_size": 1, "max_length": 96, "length_penalty": 1.0}, "ctc": {"weight": 0.3, "blank": 0},
    }
    header = CheckpointHeader.from_dict(old_asr)
    assert header.task == Task.ASR and header.ctc_weight == 0.3 and header.data.name == "espeak"
    assert header.preprocessing == AudioPreprocessing(16000, 4.2, 2.0, 14.0)
    old_captioning = {**old_asr, "preprocess": {"image_size": [64, 64], "mean": [0.5] * 3, "std": [0.2] * 3},
                      "ctc": None}
    assert CheckpointHeader.from_dict(old_captioning).preprocessing == ImagePreprocessing((64, 64), (0.5,) * 3,
                                                                                            (0.2,) * 3)


def test_newer_and_malformed_headers_are_refused_in_one_line():
    header = segmentation_header().to_dict()
    with pytest.raises(CheckpointError, match=f"header format {FORMAT_VERSION + 1} is newer than this version"):
        CheckpointHeader.from_dict({**header, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="the segmentation header needs labels"):
        CheckpointHeader.from_dict({**header, "labels": None})
    with pytest.raises(CheckpointError, match=r"malformed header \(ValueError: 'poetry' is not a valid Task\)"):
        CheckpointHeader.from_dict({**header, "task": "poetry"})
    with pytest.raises(CheckpointError, match="the asr header needs AudioPreprocessing"):
        CheckpointHeader(**{**vars(text_header(Task.ASR)), "preprocessing": segmentation_header().preprocessing})
    with pytest.raises(CheckpointError, match=r"malformed header \(TypeError: .*unexpected keyword .*'image_size'"):
        CheckpointHeader.from_dict({**text_header(Task.ASR).to_dict(), "preprocessing": header["preprocessing"]})
    asr = text_header(Task.ASR).to_dict()
    asr["preprocessing"]["silence_pad_seconds"] = -0.1
    with pytest.raises(CheckpointError, match=r"malformed header \(ValueError: silence_pad_seconds must be a finite"):
        CheckpointHeader.from_dict(asr)


def test_the_training_silence_survives_plain_data():
    header = text_header(Task.ASR)
    padded = replace(header, preprocessing=replace(header.preprocessing, silence_pad_seconds=0.3))
    again = CheckpointHeader.from_dict(padded.to_dict())
    assert again.preprocessing.silence_pad_seconds == 0.3 and not same_model(again, header)
    assert header.preprocessing.silence_pad_seconds == 0.0  # none unless a recipe adds some


def _older_asr_headers() -> dict[str, dict]:
    """The same ASR header as format 1 wrote it and in the first layout: neither records the training silence."""
    current = text_header(Task.ASR).to_dict()
    format_1 = {**current, "format_version": 1, "preprocessing": dict(current["preprocessing"])}
    del format_1["preprocessing"]["silence_pad_seconds"]
    first_layout = {
        "task": "seq2seq", "model": current["model"], "tokenizer": current["tokenizer"],
        "preprocess": {"task": "asr", "format": "fsdd", **format_1["preprocessing"]},
        "decoding": current["decoding"], "ctc": {"weight": 0.3, "blank": 0},
    }
    return {"format 1": format_1, "first layout": first_layout}


@pytest.mark.parametrize("layout", ["format 1", "first layout"])
@pytest.mark.parametrize(("recipe", "silence"), [(None, 0.0), ({"format": "fsdd"}, 0.0), ({"silence_pad": 0.3}, 0.3),
                                                 ({"silence_pad": "0.3"}, 0.0), ({"silence_pad": -1}, 0.0)])
def test_older_headers_take_the_training_silence_from_their_recipe(tmp_path, layout, recipe, silence):
    raw = {"state_dict": {}, CHECKPOINT_KEY: _older_asr_headers()[layout]}
    if recipe is not None:
        raw[DATAMODULE_HPARAMS_KEY] = recipe  # where Lightning saves the data module's hyper-parameters
    torch.save(raw, tmp_path / "old.ckpt")
    preprocessing = read_checkpoint(tmp_path / "old.ckpt", Task.ASR).header.preprocessing  # weights only
    assert preprocessing == replace(text_header(Task.ASR).preprocessing, silence_pad_seconds=silence)


def test_a_recorded_training_silence_is_not_taken_from_the_recipe(tmp_path):
    header = text_header(Task.ASR).to_dict()
    raw = {"state_dict": {}, CHECKPOINT_KEY: header, DATAMODULE_HPARAMS_KEY: {"silence_pad": 0.3}}
    torch.save(raw, tmp_path / "new.ckpt")
    assert read_checkpoint(tmp_path / "new.ckpt").header.preprocessing.silence_pad_seconds == 0.0
