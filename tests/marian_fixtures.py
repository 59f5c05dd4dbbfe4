"""A tiny HF Marian folder built here: SentencePiece models trained on generated sentences, a shared
vocab.json, and a randomly initialised ``MarianMTModel`` saved with ``save_pretrained`` (no network)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import sentencepiece
import torch

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "our teacher", "a small bird", "the farmer", "she", "he"]
VERBS = ["sees", "likes", "finds", "paints", "visits", "follows", "brings", "remembers", "watches"]
OBJECTS = ["the river", "a red house", "two apples", "the market", "a long letter", "the garden", "some bread"]
TAILS = ["", " today", " in the morning", " every day", " near the station", " again", " with care"]
#: Target-side words (a made-up language), so that source.spm and target.spm differ.
TARGET_WORDS = ["la", "kato", "hundo", "vidas", "domo", "rivero", "pomoj", "ĝardeno", "hodiaŭ", "matene", "denove"]


def sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` generated English-like sentences (fixed by ``seed``)."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        line = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}"
        made.append(line.capitalize() + rng.choice([".", "!", "?", ""]))
    return made


def target_sentences(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TARGET_WORDS) for _ in range(rng.randint(2, 8))) + "." for _ in range(count)]


def train_spm(lines: list[str], vocab_size: int) -> bytes:
    """A unigram SentencePiece model trained on ``lines``, as bytes."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    return model.getvalue()


def marian_vocab(*models: bytes) -> dict[str, int]:
    """Marian's layout: </s> 0, <unk> 1, the pieces of every model, <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for model in models:
        processor = sentencepiece.SentencePieceProcessor()
        processor.LoadFromSerializedProto(model)
        for i in range(processor.get_piece_size()):
            if not (processor.is_control(i) or processor.is_unknown(i)):
                vocab.setdefault(processor.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def build_marian_folder(folder: Path, seed: int = 0, **config_overrides) -> Path:
    """Write a tiny Marian model and its tokenizer files into ``folder`` (HF's layout); returns it."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    source_spm = train_spm(sentences(400), 120)
    target_spm = train_spm(target_sentences(400), 60)
    vocab = marian_vocab(source_spm, target_spm)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source.spm").write_bytes(source_spm)
    (folder / "target.spm").write_bytes(target_spm)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    pad = vocab["<pad>"]
    settings = dict(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=48,
        max_position_embeddings=128, pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
        forced_eos_token_id=0, activation_function="swish", scale_embedding=True, init_std=1.0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(MarianConfig(**{**settings, **config_overrides})).eval()
    with torch.no_grad():  # a bias that makes EOS likely enough for outputs of many lengths
        model.final_logits_bias.normal_(0.0, 0.5)
        model.final_logits_bias[0, 0] += 6.0
    model.save_pretrained(folder)
    MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json")).save_pretrained(
        folder
    )
    return folder
