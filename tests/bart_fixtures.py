"""A tiny HF BART folder built here: a byte-level BPE vocabulary (vocab.json, merges.txt) trained on generated
sentences, and a randomly initialised ``BartForConditionalGeneration`` saved with ``save_pretrained`` (no
network)."""

from __future__ import annotations

from pathlib import Path

import torch
from marian_fixtures import sentences, target_sentences

#: BART's special tokens at its ids 0..4 (RobertaTokenizer's layout).
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BPE_VOCAB = 400


def train_bpe(folder: Path) -> None:
    """vocab.json and merges.txt of a GPT-2 byte-level BPE trained on both sides' sentences."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        sentences(400) + target_sentences(400), vocab_size=BPE_VOCAB, min_frequency=2, special_tokens=SPECIALS,
        show_progress=False,
    )
    bpe.save_model(str(folder))


def build_bart_folder(
    folder: Path, seed: int = 0, eos_bias: float = 10.0, generation: dict | None = None, **config_overrides
) -> Path:
    """Write a tiny BART model and its tokenizer files into ``folder`` (HF's layout); returns it. The final-logits
    bias (random, EOS raised by ``eos_bias``) gives the random model outputs of many lengths; ``generation``: the
    generation config's settings besides BART's start, forced <s> and forced EOS."""
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    train_bpe(folder)
    tokenizer = BartTokenizer.from_pretrained(folder)
    settings = dict(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=48, max_position_embeddings=128,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        init_std=0.5,
    )
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(BartConfig(**{**settings, **config_overrides})).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 0.5)
        model.final_logits_bias[0, 2] += eos_bias
    forced = {"decoder_start_token_id": 2, "forced_bos_token_id": 0, "forced_eos_token_id": 2}
    for key, value in {**forced, **(generation or {})}.items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
