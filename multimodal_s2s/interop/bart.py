"""HF BART folders as suite translation checkpoints.

A BART folder (``BartForConditionalGeneration.save_pretrained`` and the Hub's ``facebook/bart-*``) holds
config.json, model.safetensors or pytorch_model.bin, and the GPT-2 byte-level BPE files vocab.json and
merges.txt (and generation_config.json). It becomes the suite's ``text_transformer`` encoder and ``transformer``
decoder in BART's layout: learned positions on both sides (BART's tables start at row 2: row ``position + 2``,
so the suite keeps rows 2 and on), a LayerNorm on the embedded tokens plus positions (``layernorm_embedding``),
post-LN blocks without a final LayerNorm, its activation and embedding scale, the final-logits bias as the
output projection's bias, and one embedding table shared by the encoder, the decoder and the output. The
tokenizer is BART's byte-level BPE (``BPETokenizer`` with BART's ids mapped to the suite's), for both sides.

Ids: the suite keeps PAD, BOS, EOS, UNK at 0..3. BART's decoder starts from ``</s>``, which is also its EOS, so
the suite's BOS is a copy of that row (never emitted), BART's ``</s>`` and ``<unk>`` are EOS and UNK, and every
other BART id follows in BART's order (``<s>`` and BART's ``<pad>`` among them, which HF's generate may emit);
the suite's PAD is one new row (zeros, never emitted). ``suite_order`` gives the BART id of each suite id.

Decoding: BART's ``forced_bos_token_id`` (``<s>``) is the decoder's prompt, read after BOS in training and
decoding alike, and counted in lengths as HF's beam search counts it (``DecodingDefaults.length_offset``); beam
scores lose the probability of the tokens the n-gram ban removes, as HF's do (``DecodingDefaults.renormalize``).
Sources are ``<s> ... </s>``, as BartTokenizer writes them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer
from torch import Tensor, nn

from multimodal_s2s.checkpoint import CheckpointHeader, Task, TrainingData
from multimodal_s2s.errors import first_line
from multimodal_s2s.interop.marian import (
    UNK_PIECE,
    check_layout,
    decoding_defaults,
    generation_settings,
    read_folder,
    suite_config,
    suite_weights,
)
from multimodal_s2s.interop.writing import ImportFailed, model_with_weights, read_hf_weights
from multimodal_s2s.tokenizers import BPETokenizer, TokenizerFormatError

ARCHITECTURE = "BartForConditionalGeneration"
#: Rows before position 0 in BART's position tables (``BartLearnedPositionalEmbedding.offset``).
POSITION_OFFSET = 2
#: BART's special tokens (RobertaTokenizer's): the text they stand for is never encoded from text or decoded.
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", UNK_PIECE, "<mask>")
START_PIECE, END_PIECE = "<s>", "</s>"


def import_checkpoint(source: str | Path) -> tuple[CheckpointHeader, nn.Module]:
    """A BART folder -> (translation header, suite model with its weights). ImportFailed (one line naming the
    file) when it is not a BART folder, is truncated, or has dims the suite cannot express."""
    folder, config, vocab = read_folder(source, "BART", check_config)
    order = suite_order(vocab, config, folder / "vocab.json")
    tokenizer = bpe_tokenizer(folder, vocab, [None, None, *order[2:]])
    weights = read_hf_weights(folder)
    forced = forced_bos(folder, config, vocab)
    prompt = [] if forced is None else [order.index(forced, 2)]
    rows = config["max_position_embeddings"]
    layout = {"positions": "learned", "embed_norm": True}
    model_config = suite_config(
        config, len(order), "final_logits_bias" in weights, encoder=layout,
        decoder={**layout, "max_positions": rows, "prompt": prompt},
    )
    model = model_with_weights(folder, model_config, lambda: bart_weights(weights, config, order))
    header = CheckpointHeader(
        task=Task.TRANSLATION,
        model=model_config,
        data=TrainingData(name=f"bart:{config.get('_name_or_path') or folder.name}", root=str(folder)),
        tokenizer=tokenizer,
        source_tokenizer=tokenizer,
        decoding=replace(decoding_defaults(folder, config, prompt=len(prompt)), renormalize=False),
    )
    return header, model.eval()


def check_config(config: dict[str, Any], path: Path) -> None:
    """ImportFailed unless ``config`` is a BartForConditionalGeneration whose layout the suite's parts express."""
    check_layout(config, path, "bart", ARCHITECTURE)
    rows = config.get("max_position_embeddings")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ImportFailed(f"{path}: max_position_embeddings is missing or not an integer >= 1")
    start = config.get("decoder_start_token_id")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
        raise ImportFailed(f"{path}: decoder_start_token_id is not an integer >= 0")


def suite_order(vocab: list[str], config: dict[str, Any], path: Path) -> list[int | None]:
    """The BART id of each suite id: None for the suite's PAD, then BART's decoder start (the suite's BOS), eos,
    unk, then every BART id but eos and unk in order. ImportFailed unless eos is ``</s>`` and ``<s>`` exists."""
    eos, unk = config["eos_token_id"], vocab.index(UNK_PIECE)
    start = config.get("decoder_start_token_id", eos)
    if START_PIECE not in vocab or eos >= len(vocab) or vocab[eos] != END_PIECE or start >= len(vocab):
        raise ImportFailed(f"{path}: needs {START_PIECE} and {END_PIECE} with eos_token_id {eos} (BART's layout)")
    return [None, start, eos, unk, *(i for i in range(len(vocab)) if i not in (eos, unk))]


def bpe_tokenizer(folder: Path, vocab: list[str], order: list[int | None]) -> BPETokenizer:
    """BART's byte-level BPE from vocab.json and merges.txt, built as transformers' BartTokenizer builds it (no
    prefix space, ``<s> ... </s>`` around a source, BART's special tokens), in suite ids (``order``)."""
    merges = folder / "merges.txt"
    if not merges.is_file():
        raise ImportFailed(f"{merges}: not found (a BART folder has vocab.json and merges.txt)")
    try:
        model = models.BPE.from_file(
            str(folder / "vocab.json"), str(merges), dropout=None, continuing_subword_prefix="",
            end_of_word_suffix="", fuse_unk=False,
        )
    except Exception as error:  # the HF loader raises a bare Exception on a malformed file
        raise ImportFailed(f"{merges}: not BPE merges of vocab.json ({first_line(error)})") from None
    hf_tokenizer = HFTokenizer(model)
    hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_tokenizer.decoder = decoders.ByteLevel()
    specials = [AddedToken(piece, special=True, lstrip=piece == "<mask>") for piece in SPECIAL_PIECES if piece in vocab]
    hf_tokenizer.add_special_tokens(specials)
    hf_tokenizer.post_processor = processors.RobertaProcessing(
        (END_PIECE, vocab.index(END_PIECE)), (START_PIECE, vocab.index(START_PIECE)), trim_offsets=True,
        add_prefix_space=False,
    )
    try:
        return BPETokenizer(hf_tokenizer, order)
    except TokenizerFormatError as error:
        raise ImportFailed(f"{folder / 'vocab.json'}: {error}") from None


def forced_bos(folder: Path, config: dict[str, Any], vocab: list[str]) -> int | None:
    """BART's forced first token (``forced_bos_token_id``: ``<s>``) in the generation settings, if any."""
    value = generation_settings(folder, config).get("forced_bos_token_id")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(vocab)):
        raise ImportFailed(f"{folder}: forced_bos_token_id {value!r} is not an id of the vocabulary")
    return value


def bart_weights(weights: dict[str, Tensor], config: dict[str, Any], order: list[int | None]) -> dict[str, Tensor]:
    """HF BART's state dict -> the suite EncoderDecoder's: Marian's names (``suite_weights``) plus BART's position
    tables (rows from ``POSITION_OFFSET`` on) and embedding norms. KeyError for a missing tensor."""
    shared = next((weights[key] for key in SHARED_KEYS if key in weights), None)
    if shared is None:
        raise KeyError(f"none of {', '.join(SHARED_KEYS)}")
    out = suite_weights({"model.shared.weight": shared, **weights}, config, order)
    for side in ("encoder", "decoder"):
        out[f"{side}.positions.weight"] = weights[f"model.{side}.embed_positions.weight"][POSITION_OFFSET:]
        for kind in ("weight", "bias"):
            out[f"{side}.embed_norm.{kind}"] = weights[f"model.{side}.layernorm_embedding.{kind}"]
    return out


#: Where BART's folders keep the shared embedding (one of the tied names; save_pretrained stores one).
SHARED_KEYS = ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
               "lm_head.weight")
