"""An imported whisper checkpoint on every suite path, as a user drives them: ``mms2s import whisper``, then
``mms2s transcribe`` (VAD windows, srt), ``Transcriber`` with word timestamps, ``mms2s fit`` fine-tuning it
from ``model.init_checkpoint`` and ``mms2s validate`` with it as ``--ckpt_path``."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from recipe_fixtures import write_recipe
from whisper_fixtures import random_whisper, recordings, save_whisper_file

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import MODEL_PREFIX, read_checkpoint
from multimodal_s2s.data.asr import target_normalizer
from multimodal_s2s.metrics.text import normalize_transcript
from multimodal_s2s.pipelines import Transcriber
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.tokenizers import WhisperTokenizer

pytest.importorskip("whisper", reason="openai-whisper (the bench extra) holds whisper's vocabulary files")
#: A random model fails whisper's checks on every window: keep its first decoding.
NO_CHECKS = [
    *("--temperature-increment-on-fallback", "none", "--compression-ratio-threshold", "none"),
    *("--logprob-threshold", "none", "--no-speech-threshold", "none", "--max-ngram-repeats", "none"),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    out = folder / "tiny.ckpt"
    assert main(["import", "whisper", str(save_whisper_file(random_whisper(), folder / "tiny.pt")), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two spoken sentences with 1.5 s of silence between them."""
    clips = recordings()[:2]
    path = tmp_path_factory.mktemp("audio") / "talk.wav"
    soundfile.write(path, np.concatenate([clips[0], np.zeros(int(1.5 * SAMPLE_RATE), np.float32), clips[1]]),
                    SAMPLE_RATE)
    return path


def test_header_is_self_contained(checkpoint):
    header = read_checkpoint(checkpoint).header
    tokenizer = header.tokenizer
    assert isinstance(tokenizer, WhisperTokenizer) and tokenizer.vocab_size == 51865
    assert header.preprocessing.log_mel == "whisper" and header.decoding.beam_rule == "whisper"
    prompt = [tokenizer.token_id(token) for token in ("<|en|>", "<|transcribe|>", "<|notimestamps|>")]
    assert header.model.decoder_args["prompt"] == prompt
    assert header.decoding.max_length == 224 and tokenizer.token_id("<|startoftranscript|>") not in prompt


def test_import_then_transcribe_srt_as_a_user(checkpoint, recording, tmp_path, capsys):
    assert main(["transcribe", str(recording), "--checkpoint", str(checkpoint), "--format", "srt",
                 "--output-dir", str(tmp_path), "--device", "cpu", *NO_CHECKS]) == 0
    srt = (tmp_path / "talk.srt").read_text()
    transcript = Transcriber.from_checkpoint(checkpoint, "cpu")(
        [recording], word_timestamps=True, temperature=(0.0,), compression_ratio_threshold=None,
        logprob_threshold=None, no_speech_threshold=None, max_ngram_repeats=None,
    )[0]
    assert transcript.segments and all(segment.text in srt for segment in transcript.segments)
    for segment in transcript.segments:
        assert segment.words and segment.start <= segment.words[0].start
        assert all(a.end <= b.start for a, b in zip(segment.words, segment.words[1:], strict=False))
        assert segment.words[-1].end <= segment.end


def test_fine_tune_then_validate_as_a_user(checkpoint, tmp_path):
    recipe = write_recipe("asr", tmp_path)
    assert main(["fit", "--config", str(recipe), "--model.init_args.init_checkpoint", str(checkpoint),
                 "--trainer.max_steps", "2", "--data.init_args.batch_size", "4"]) == 0
    tuned = read_checkpoint(next((tmp_path / "runs").rglob("last.ckpt")))
    start = read_checkpoint(checkpoint)
    assert tuned.header.tokenizer == start.header.tokenizer and tuned.header.model == start.header.model
    assert tuned.header.preprocessing == start.header.preprocessing and tuned.global_step == 2
    name = MODEL_PREFIX + "decoder.blocks.0.mlp.0.weight"
    assert not torch.equal(tuned.state_dict[name], start.state_dict[name])  # trained
    assert main(["validate", "--config", str(recipe), "--ckpt_path", str(checkpoint)]) == 0


def test_whisper_targets_keep_case_and_punctuation(checkpoint):
    tokenizer = read_checkpoint(checkpoint).header.tokenizer
    assert target_normalizer(tokenizer)("  Hello,  World! ") == "Hello, World!"
    assert target_normalizer(None) is normalize_transcript


def test_hub_folder_transcribes_as_the_checkpoint(checkpoint, recording, tmp_path):
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hub", "--out", str(tmp_path / "hub")]) == 0
    options = dict(temperature=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                   no_speech_threshold=None, max_ngram_repeats=None)
    expected = Transcriber.from_checkpoint(checkpoint, "cpu")([recording], **options)[0]
    assert Transcriber.from_pretrained(tmp_path / "hub", "cpu")([recording], **options)[0] == expected


def test_onnx_export_refuses_in_one_line_and_writes_nothing(checkpoint, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) != 0
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "imported whisper or BART layout" in error and str(checkpoint) in error
    assert not out.exists() and list(tmp_path.iterdir()) == []
