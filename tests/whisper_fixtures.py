"""Randomly initialised whisper models of the originals' own classes (openai-whisper's ``Whisper``, HF's
``WhisperForConditionalGeneration``) at small dims but whisper's 30 s input and full vocabulary, and the
recordings the parity tests decode: espeak-ng speech and, where present, FSDD clips.

A random whisper's logits are ruled by its token embeddings (it repeats one token whatever it hears), so
``make_audible`` shapes the weights: most embedding rows small and 30 rows (plus EOS) large, so that a few
tokens compete; position rows large, so that steps differ; the cross-attention output scaled up, so that
the recording decides; EOS a near copy of a frequent token, so that beams finish. The architecture stays
whisper's, only the numbers change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from asr_fixtures import VOICE
from torch import Tensor

from multimodal_s2s.data import espeak
from multimodal_s2s.preprocessing.audio import load_audio

whisper = pytest.importorskip("whisper", reason="openai-whisper (the bench extra) is the reference")

WIDTH, HEADS, LAYERS = 32, 4, 2
MULTILINGUAL_VOCAB = 51865
#: whisper's DecodingOptions(sample_len): tokens decoded after the prompt (a random model never stops alone).
SAMPLE_LEN = 8
FSDD = Path("/work/shared/data/fsdd/recordings")
CLIPS = 20
SENTENCES = (
    "please open the red door", "set the timer to five minutes", "anna finds a small green box", "hello there",
    "one two three", "the cat sat on the mat", "good morning everyone", "what time is it", "seven eight nine",
    "turn off the lights", "call me tomorrow", "where is the station", "it is raining again", "bring two cups",
    "the blue car stopped", "we walk to school", "read the first page", "open the window please", "zero", "yes",
)


def recordings() -> list[np.ndarray]:
    """20 clips (S,) at 16 kHz: half espeak-ng sentences and half FSDD digits when FSDD is present, else all
    espeak; skips the test without espeak-ng."""
    if not espeak.espeak_available():
        pytest.skip("espeak-ng is not installed (the parity tests decode its speech)")
    fsdd = sorted(FSDD.glob("*.wav"))[: CLIPS // 2] if FSDD.is_dir() else []
    spoken = [espeak.synthesize(text, VOICE) for text in SENTENCES[: CLIPS - len(fsdd)]]
    return spoken + [load_audio(path) for path in fsdd]


def whisper_mels(clips: list[np.ndarray], n_mels: int = 80) -> Tensor:
    """(N, n_mels, 3000): whisper's own log-mel of each clip padded to 30 s."""
    return torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(c)), n_mels) for c in clips])


def make_audible(embedding: Tensor, positions: Tensor, cross_outs: list[Tensor], eot: int, seed: int = 0) -> None:
    """Shape a random whisper decoder's weights in place (module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embedding.normal_(0, 0.02, generator=generator)
        live = [*torch.randperm(eot - 1, generator=generator)[:30].tolist()]
        embedding[live] = torch.randn(len(live), embedding.shape[1], generator=generator) * 0.3
        embedding[eot] = embedding[live[17]] * 0.95
        positions.normal_(0, 2.0, generator=generator)
        for weight in cross_outs:
            weight.mul_(40.0)


def random_whisper(n_vocab: int = MULTILINGUAL_VOCAB, seed: int = 0):
    """A ``whisper.model.Whisper`` at small dims with whisper's 1500 audio rows and 448 text positions."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=WIDTH, n_audio_head=HEADS, n_audio_layer=LAYERS,
                           n_vocab=n_vocab, n_text_ctx=448, n_text_state=WIDTH, n_text_head=HEADS, n_text_layer=LAYERS)
    model = Whisper(dims).eval()
    decoder = model.decoder
    eot = whisper.tokenizer.get_tokenizer(n_vocab > 51864, num_languages=n_vocab - 51765 - int(n_vocab > 51864)).eot
    make_audible(decoder.token_embedding.weight, decoder.positional_embedding,
                 [block.cross_attn.out.weight for block in decoder.blocks], eot, seed)
    return model


def save_whisper_file(model, path: Path) -> Path:
    """``model`` in whisper's checkpoint format ({"dims", "model_state_dict"}), as its released files are."""
    torch.save({"dims": model.dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def random_hf_whisper(folder: Path, seed: int = 0):
    """An HF ``WhisperForConditionalGeneration`` from a tiny ``WhisperConfig`` (multilingual ids), saved with
    ``save_pretrained`` in ``folder``."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.WhisperConfig(
        vocab_size=MULTILINGUAL_VOCAB, num_mel_bins=80, d_model=WIDTH, encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=4 * WIDTH,
        decoder_ffn_dim=4 * WIDTH, max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=50258, eos_token_id=50257, pad_token_id=50257, bos_token_id=50257,
    )
    model = transformers.WhisperForConditionalGeneration(config).eval()
    decoder = model.model.decoder
    make_audible(decoder.embed_tokens.weight, decoder.embed_positions.weight,
                 [layer.encoder_attn.out_proj.weight for layer in decoder.layers], 50257, seed)
    model.save_pretrained(folder)
    return model
