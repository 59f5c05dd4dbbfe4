"""whisper import: a randomly initialised ``whisper.model.Whisper`` saved in whisper's checkpoint format, and an
HF ``WhisperForConditionalGeneration`` saved with ``save_pretrained`` (``whisper_fixtures``), become suite
checkpoints whose features, logits and tokens equal the originals' on real recordings; a real tiny.pt in
whisper's cache gets the same checks; bad sources fail in one line with nothing written."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from whisper_fixtures import SAMPLE_LEN, random_hf_whisper, random_whisper, recordings, save_whisper_file, whisper_mels

from multimodal_s2s.apps.cli import main
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.interop.whisper import import_checkpoint
from multimodal_s2s.preprocessing.audio import AudioFeatures
from multimodal_s2s.preprocessing.tokens import pad_last_axis

whisper = pytest.importorskip("whisper", reason="openai-whisper (the bench extra) is the reference")
LOGIT_TOLERANCE = 1e-4
BEAM = 5


class Imported:
    """A whisper-format file and its import (header, suite model)."""

    def __init__(self, source: Path | str, language: str = "en"):
        self.source = source
        self.header, self.model = import_checkpoint(source, language)
        self.tokenizer = self.header.tokenizer

    def features(self, clips) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, n_mels, 3000) suite features and (N,) frame lengths of the clips."""
        waveforms, lengths = pad_last_axis([torch.from_numpy(clip) for clip in clips], 0.0)
        n_mels = self.model.encoder.info.n_mels
        return AudioFeatures(n_mels, {"num_freq_masks": 0, "num_time_masks": 0}, "whisper").eval()(waveforms, lengths)

    def tokens(self, clips, beam_size: int) -> list[list[int]]:
        """The suite's decoding of each clip under the checkpoint's rules, in whisper ids."""
        rules = self.header.decoding
        options = DecodingOptions(max_length=SAMPLE_LEN, beam_size=beam_size, length_penalty=rules.length_penalty,
                                  **rules.rules())
        features, lengths = self.features(clips)
        results = decode(self.model, features, options, lengths)
        return [self.tokenizer.to_whisper(result.tokens) for result in results]


def whisper_tokens(model, mels: torch.Tensor, beam_size: int | None) -> list[list[int]]:
    options = whisper.DecodingOptions(language="en", task="transcribe", without_timestamps=True, fp16=False,
                                      sample_len=SAMPLE_LEN, beam_size=beam_size)
    if beam_size is None:
        return [result.tokens for result in whisper.decode(model, mels, options)]
    return [whisper.decode(model, mel, options).tokens for mel in mels]


@pytest.fixture(scope="module")
def clips():
    return recordings()


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return random_whisper()


@pytest.fixture(scope="module")
def imported(original, tmp_path_factory):
    return Imported(save_whisper_file(original, tmp_path_factory.mktemp("whisper") / "random.pt"))


def max_logit_difference(original, imported: Imported, clips) -> float:
    """Teacher-forced logits of whisper's prompt and a sentence's tokens on each clip: max |suite - whisper|."""
    reference = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    text = reference.encode(" please open the red door")
    prompt = list(reference.sot_sequence_including_notimestamps)
    features, lengths = imported.features(clips)
    with torch.no_grad():
        theirs = original(whisper_mels(clips), torch.tensor([prompt + text] * len(clips)))[:, len(prompt) - 1 :]
        suite_ids = torch.tensor([[1, *imported.tokenizer.to_suite(text)]] * len(clips))
        ours = imported.model.decoder(suite_ids, imported.model.encode(features, lengths))  # (N, L, V) suite order
    in_whisper_order = ours[..., torch.argsort(torch.tensor(imported.tokenizer.order))]
    return float((in_whisper_order - theirs).abs().max())


def test_features_equal_whisper_log_mel(imported, clips):
    features, _ = imported.features(clips)
    assert (features - whisper_mels(clips)).abs().max() < 1e-5


def test_logits_equal_whisper(original, imported, clips):
    assert max_logit_difference(original, imported, clips) < LOGIT_TOLERANCE


def test_greedy_tokens_equal_whisper_decode(original, imported, clips):
    expected = whisper_tokens(original, whisper_mels(clips), None)
    assert imported.tokens(clips, 1) == expected
    assert len({tuple(tokens) for tokens in expected}) > 1  # the recordings decide


def test_beam_tokens_equal_whisper_decode(original, imported, clips):
    """whisper decodes a beam one recording at a time (its batched beam search fails in this version)."""
    expected = whisper_tokens(original, whisper_mels(clips), BEAM)
    assert imported.tokens(clips, BEAM) == expected
    assert any(len(tokens) < SAMPLE_LEN for tokens in expected)  # some beams finished: the EOS rules matter


def test_tokens_equal_hf_generate(tmp_path, clips):
    """Greedy, with whisper's prompt as decoder input ids and its suppression rules given to HF."""
    transformers = pytest.importorskip("transformers", reason="HF transformers (the bench extra) is the reference")
    transformers.logging.set_verbosity_error()
    hf = random_hf_whisper(tmp_path / "hf")
    imported = Imported(tmp_path / "hf")
    reference = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    rules = imported.header.decoding
    with torch.no_grad():
        generated = hf.generate(
            whisper_mels(clips), decoder_input_ids=torch.tensor([reference.sot_sequence_including_notimestamps] * 20),
            max_new_tokens=SAMPLE_LEN, do_sample=False, num_beams=1,
            suppress_tokens=imported.tokenizer.to_whisper(rules.suppress_tokens),
            begin_suppress_tokens=imported.tokenizer.to_whisper(rules.suppress_at_start),
        )
    expected = [row[: row.index(reference.eot)] if reference.eot in row else row for row in generated.tolist()]
    assert imported.tokens(clips, 1) == expected


def test_cached_tiny_equals_whisper(clips):
    """The same parity on whisper's real tiny model when the user's whisper cache holds it (never downloaded)."""
    path = Path.home() / ".cache" / "whisper" / "tiny.pt"
    if not path.is_file():
        pytest.skip(f"no {path} (whisper's cache; tests never download)")
    original = whisper.load_model(str(path), device="cpu").float().eval()
    imported = Imported(path)
    assert max_logit_difference(original, imported, clips) < 1e-3  # real weights: larger logits
    assert imported.tokens(clips, 1) == whisper_tokens(original, whisper_mels(clips), None)


def _whisper_file(path: Path, original, dims=None, weights=None) -> Path:
    dims = {**original.dims.__dict__, **(dims or {})}
    torch.save({"dims": dims, "model_state_dict": weights or original.state_dict()}, path)
    return path


def _truncated(path: Path, original) -> Path:
    data = save_whisper_file(original, path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _hf_folder_of(model_type: str):
    def make(path: Path, original) -> Path:
        path.mkdir()
        (path / "config.json").write_text(f'{{"model_type": "{model_type}", "d_model": 32}}')
        return path

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path, original: (path.write_text("not a checkpoint"), path)[1], "unreadable or truncated"),
        (lambda path, original: (torch.save({"state_dict": {}}, path), path)[1], "not a whisper checkpoint"),
        (_truncated, "unreadable or truncated"),
        (_hf_folder_of("marian"), "model_type is 'marian', not 'whisper'"),
        (lambda path, original: _whisper_file(path, original, weights={"encoder.conv1.weight": torch.zeros(1)}),
         "weights do not fit the dims"),
        (lambda path, original: _whisper_file(path, original, {"n_text_state": 64}), "differs from n_text_state"),
        (lambda path, original: _whisper_file(path, original, {"n_audio_ctx": 750}), "is not whisper's 30 s"),
        (lambda path, original: _whisper_file(path, original, {"n_vocab": 1000}), "is no whisper vocabulary"),
        (lambda path, original: _whisper_file(path, original, {"n_audio_head": 5}), "not divisible by n_audio_head"),
    ],
    ids=["text-file", "not-whisper-keys", "truncated", "other-architecture", "other-weights", "widths", "audio-ctx",
         "vocab", "heads"],
)
def test_bad_sources_fail_in_one_line_and_write_nothing(original, tmp_path, capsys, make, message):
    source = make(tmp_path / "source.pt", original)
    out = tmp_path / "out.ckpt"
    assert main(["import", "whisper", str(source), str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and str(source) in error
    assert not out.exists() and not list(tmp_path.glob(".out.ckpt.*"))


def test_names_resolve_through_whisper_cache_or_fail_in_one_line(original, tmp_path, monkeypatch, capsys):
    """``openai-whisper:NAME`` reads whisper's cache through its own loader; offline without a cached copy, one
    line names the ways to give the weights."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "whisper" / "tiny.pt"

    def download(url: str, root: str, in_memory: bool) -> str:
        if not cached.is_file():
            raise urllib.error.URLError("network is unreachable")
        return str(cached)

    monkeypatch.setattr(whisper, "_download", download)
    out = tmp_path / "tiny.ckpt"
    assert main(["import", "whisper", "openai-whisper:tiny", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "not in whisper's cache" in error and str(cached) in error
    assert "whisper.load_model('tiny')" in error and "HF Whisper folder" in error and not out.exists()
    assert main(["import", "whisper", "openai-whisper:tiny.xl", str(out)]) == 2
    assert "unknown model" in capsys.readouterr().err
    cached.parent.mkdir(parents=True)
    save_whisper_file(original, cached)
    assert main(["import", "whisper", "openai-whisper:tiny", str(out)]) == 0 and out.is_file()
