"""ASR training: the hybrid CTC/attention loss goes down, the checkpoint carries everything transcription
needs (model, CTC head, tokenizer, preprocessing) and rebuilds the same model."""

from __future__ import annotations

import pytest
import torch
from asr_fixtures import tiny_asr_run

from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.metrics.text import ErrorRates
from multimodal_s2s.models.ctc import CTCHead
from multimodal_s2s.models.from_checkpoint import ctc_head_from_checkpoint, model_from_checkpoint
from multimodal_s2s.pipelines import Transcriber
from multimodal_s2s.types import EOS_ID, PAD_ID, SequenceOutput

TRAIN_STEPS = 40
LOSS_WINDOW = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    losses: list[float] = []
    trainer, module, data = tiny_asr_run(tmp_path_factory.mktemp("tones"), TRAIN_STEPS, losses=losses)
    checkpoint_path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(checkpoint_path)
    return module, data, losses, checkpoint_path


def test_short_training_lowers_the_loss(trained):
    _, _, losses, _ = trained
    assert len(losses) == TRAIN_STEPS
    first, last = sum(losses[:LOSS_WINDOW]) / LOSS_WINDOW, sum(losses[-LOSS_WINDOW:]) / LOSS_WINDOW
    assert last < 0.6 * first


def test_validation_logs_wer_and_cer(trained):
    module, data, _, _ = trained
    (logged,) = module.trainer.validate(module, data, verbose=False)
    batch = next(iter(data.val_dataloader()))
    module.eval()
    expected = ErrorRates()
    expected.update([text for text, _ in module.generate(batch["inputs"], batch["lengths"])], batch["references"])
    assert logged["val/wer"] == pytest.approx(expected.compute()["wer"], abs=1e-3)
    assert logged["val/cer"] == pytest.approx(expected.compute()["cer"], abs=1e-3)


def test_checkpoint_round_trip(trained):
    module, data, _, path = trained
    checkpoint = read_checkpoint(path, Task.ASR)
    header = checkpoint.header
    assert header.ctc_weight == 0.3 and header.preprocessing.sample_rate == 16000
    assert 0 < header.preprocessing.median_seconds <= header.preprocessing.max_seconds
    model = model_from_checkpoint(checkpoint)
    head = ctc_head_from_checkpoint(checkpoint, model.encoder.info.out_dim)
    module.eval()
    waveforms = torch.stack([data.datasets["val"][0]["inputs"], data.datasets["val"][0]["inputs"]])
    features, lengths = module.audio_features(waveforms, torch.tensor([waveforms.shape[1]] * 2))
    tokens = torch.tensor([[1, 5, 6], [1, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(model(features, tokens, lengths), module.model(features, tokens, lengths), atol=1e-6)
        encoded = module.model.encode(features, lengths)
        assert torch.allclose(head(encoded), module.ctc_head(encoded), atol=1e-6)


def test_transcription_matches_validation_decoding(trained):
    module, data, _, path = trained
    transcriber = Transcriber.from_checkpoint(path, device="cpu")
    waveforms = [data.datasets["val"][i]["inputs"] for i in range(2)]
    module.eval()
    module.decoding = transcriber.window_options(beam_size=2, window_seconds=max(len(w) for w in waveforms) / 16000)
    inputs = torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True)  # (2, S)
    expected = [text for text, _ in module.generate(inputs, torch.tensor([len(w) for w in waveforms]))]
    assert transcriber.recognize([w.numpy() for w in waveforms], beam_size=2, ctc_weight=0.0) == expected


def test_no_ctc_head_when_weight_is_zero(tmp_path):
    trainer, module, _ = tiny_asr_run(tmp_path, steps=1, ctc_weight=0.0)
    assert module.ctc_head is None
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    checkpoint = read_checkpoint(tmp_path / "plain.ckpt", Task.ASR)
    assert ctc_head_from_checkpoint(checkpoint, module.model.encoder.info.out_dim) is None
    assert not checkpoint.header.has_ctc_head


def test_ctc_weight_out_of_range():
    with pytest.raises(ValueError, match="ctc_weight"):
        Seq2SeqModule("audio_transformer_tiny", "transformer_tiny", ctc_weight=1.0)


def test_ctc_loss_and_sequence_scores():
    head = CTCHead(memory_dim=8, vocab_size=6)
    encoded = SequenceOutput(memory=torch.randn(2, 10, 8), mask=torch.tensor([[True] * 10, [True] * 6 + [False] * 4]))
    targets = torch.tensor([[4, 5, EOS_ID, PAD_ID], [5, 5, 4, EOS_ID]])  # lengths 2 and 3
    loss = head.loss(encoded, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    one = SequenceOutput(memory=encoded.memory[:1], mask=encoded.mask[:1])
    scores = head.sequence_log_probs(one, [[4, 5], [], [4] * 11])
    assert torch.isfinite(scores[:2]).all() and scores[2] == float("-inf")  # 11 tokens cannot fit 10 frames
