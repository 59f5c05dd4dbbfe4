"""The checkpoint file format, read in one place: files of header formats 0, 1 and 2 still rebuild their
model, the CTC head is the header's decision (not the weight names'), Lightning's step count reaches the
model card, and an encoder's ``pretrained_path`` tells suite checkpoints apart with the same test."""

from __future__ import annotations

import pytest
import torch
from checkpoint_helpers import random_checkpoint, segmentation_header, text_header, write_checkpoint

from multimodal_s2s.checkpoint import (
    CHECKPOINT_KEY,
    CTC_HEAD_PREFIX,
    CheckpointError,
    Task,
    is_suite_checkpoint,
    load_checkpoint_file,
    read_checkpoint,
)
from multimodal_s2s.encoders.weights import suite_checkpoint_part
from multimodal_s2s.models.ctc import CTCHead
from multimodal_s2s.models.from_checkpoint import ctc_head_from_checkpoint, model_from_checkpoint
from multimodal_s2s.pipelines import Captioner


def with_header_format(path, version: int):
    """A copy of the checkpoint at ``path`` as header format ``version`` wrote it (1 and 2: the same fields
    but the training silence, 0: the first layout's fields)."""
    raw = dict(load_checkpoint_file(path))
    header = dict(raw[CHECKPOINT_KEY], format_version=version)
    if version == 0:
        first_layout = {key: header[key] for key in ("task", "model", "tokenizer", "decoding")}
        header = {**first_layout, "preprocess": {**header["preprocessing"], "format": "shapes"}}
    if version == 1 and header["task"] == Task.ASR.value:
        header["preprocessing"] = {k: v for k, v in header["preprocessing"].items() if k != "silence_pad_seconds"}
    old = path.with_name(f"format_{version}.ckpt")  # not ``path``: its tensors are memory-mapped from it
    torch.save({**raw, CHECKPOINT_KEY: header}, old)
    return old


FORMATS = [(Task.CAPTIONING, 0), (Task.ASR, 1), (Task.CAPTIONING, 1), (Task.ASR, 2), (Task.SEGMENTATION, 2)]


@pytest.mark.parametrize(("task", "version"), FORMATS)
def test_older_header_formats_still_rebuild_their_model(tmp_path, task, version):
    header = segmentation_header() if task == Task.SEGMENTATION else text_header(task)
    path = random_checkpoint(tmp_path / "model.ckpt", header)
    expected = model_from_checkpoint(read_checkpoint(path)).state_dict()
    checkpoint = read_checkpoint(with_header_format(path, version), task)
    assert checkpoint.header.model == header.model and checkpoint.header.tokenizer == header.tokenizer
    rebuilt = model_from_checkpoint(checkpoint).state_dict()
    assert rebuilt.keys() == expected.keys() and all(torch.equal(rebuilt[k], expected[k]) for k in expected)


def test_the_ctc_head_is_the_headers_decision(tmp_path):
    header = text_header(Task.ASR)
    plain = random_checkpoint(tmp_path / "plain.ckpt", header)
    raw = dict(load_checkpoint_file(plain))
    head = CTCHead(32, header.model.vocab_size)
    head_weights = {f"{CTC_HEAD_PREFIX}{key}": value for key, value in head.state_dict().items()}
    stray = tmp_path / "stray.ckpt"  # CTC weights, but the header says there is no head: none is built
    torch.save({**raw, "state_dict": {**raw["state_dict"], **head_weights}}, stray)
    assert not read_checkpoint(stray).header.has_ctc_head
    assert ctc_head_from_checkpoint(read_checkpoint(stray), 32) is None
    hybrid = {**raw, CHECKPOINT_KEY: {**raw[CHECKPOINT_KEY], "ctc_weight": 0.3}}
    torch.save({**hybrid, "state_dict": {**raw["state_dict"], **head_weights}}, tmp_path / "hybrid.ckpt")
    loaded = ctc_head_from_checkpoint(read_checkpoint(tmp_path / "hybrid.ckpt"), 32)
    assert torch.equal(loaded.project.weight, head.project.weight) and not loaded.training
    torch.save(hybrid, tmp_path / "headless.ckpt")  # the header promises a head the weights lack: one line
    with pytest.raises(CheckpointError, match=r"headless.ckpt: cannot rebuild the CTC head from this checkpoint"):
        ctc_head_from_checkpoint(read_checkpoint(tmp_path / "headless.ckpt"), 32)


def test_the_training_steps_lightning_saved_reach_the_model_card(tmp_path):
    path = random_checkpoint(tmp_path / "model.ckpt", text_header(Task.CAPTIONING))
    assert read_checkpoint(path).global_step is None
    assert Captioner.from_checkpoint(path, "cpu").model_card().training_steps is None
    trained = tmp_path / "trained.ckpt"
    torch.save({**load_checkpoint_file(path), "global_step": 7}, trained)
    assert read_checkpoint(trained).global_step == 7
    assert dict(Captioner.from_checkpoint(trained, "cpu").model_card().rows())["Training"] == "7 optimizer steps"


def test_an_encoders_pretrained_path_tells_suite_checkpoints_apart(tmp_path):
    suite = random_checkpoint(tmp_path / "model.ckpt", text_header(Task.CAPTIONING))
    assert is_suite_checkpoint(load_checkpoint_file(suite))
    encoder = model_from_checkpoint(read_checkpoint(suite)).encoder
    assert suite_checkpoint_part(suite, "encoder").keys() == encoder.state_dict().keys()
    torch.save({"state_dict": {"weight": torch.zeros(1)}}, tmp_path / "lightning.ckpt")  # no header: not ours
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for other in ("lightning.ckpt", "plain.pt", "notes.txt"):
        assert suite_checkpoint_part(tmp_path / other, "encoder") is None, other
    assert not is_suite_checkpoint(load_checkpoint_file(tmp_path / "lightning.ckpt"))
    write_checkpoint(tmp_path / "empty.ckpt", text_header(Task.CAPTIONING))
    with pytest.raises(ValueError, match="holds no decoder weights"):
        suite_checkpoint_part(tmp_path / "empty.ckpt", "decoder")
