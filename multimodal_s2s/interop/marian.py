"""HF Marian (OPUS-MT) folders as suite translation checkpoints.

A Marian folder (``MarianMTModel.save_pretrained`` and the Hub's ``Helsinki-NLP/opus-mt-*``) holds
config.json, model.safetensors or pytorch_model.bin, source.spm, target.spm and vocab.json (and
generation_config.json). It becomes the suite's ``text_transformer`` encoder and ``transformer`` decoder
in Marian's layout (post-LN, no final LayerNorm, sinusoidal positions, its activation and embedding
scale, the final-logits bias as the output projection's bias, one embedding table shared by the encoder,
the decoder and the output, so it stays one table when the model is fine-tuned), with a
``SentencePieceTokenizer`` for each side.

Ids: the suite keeps PAD, BOS, EOS, UNK at 0..3. Marian's pad token is also its decoder start token,
so it becomes the suite's BOS (which decoding never emits: Marian's generation bans pad too), Marian's
eos and unk become EOS and UNK, the other pieces follow in Marian's order, and the suite's PAD is one new
row (zeros, never emitted). ``suite_order`` gives the Marian id of each suite id.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from multimodal_s2s.checkpoint import CheckpointHeader, DecodingDefaults, Task, TrainingData
from multimodal_s2s.interop.writing import ImportFailed, model_with_weights, read_hf_weights, read_json
from multimodal_s2s.layers.activations import ACTIVATIONS
from multimodal_s2s.layers.positional import sinusoidal_positions
from multimodal_s2s.models import ModelConfig
from multimodal_s2s.tokenizers import SentencePieceTokenizer, TokenizerFormatError
from multimodal_s2s.types import SPECIAL_TOKENS

ARCHITECTURE = "MarianMTModel"
UNK_PIECE = "<unk>"
#: HF's defaults for what a generation config leaves out (``GenerationConfig``).
HF_DEFAULTS = {"num_beams": 1, "length_penalty": 1.0, "no_repeat_ngram_size": 0, "early_stopping": False}
#: New tokens HF generates when no max_length is set anywhere.
HF_DEFAULT_NEW_TOKENS = 20
#: Largest difference accepted between a stored position table and the suite's sinusoids.
POSITION_TOLERANCE = 1e-4


def import_checkpoint(source: str | Path) -> tuple[CheckpointHeader, nn.Module]:
    """A Marian folder -> (translation header, suite model with its weights). ImportFailed (one line naming
    the file) when it is not a Marian folder, is truncated, or has dims the suite cannot express."""
    folder, config, vocab = read_folder(source, "Marian", check_config)
    order = suite_order(vocab, config)
    pieces = [*SPECIAL_TOKENS, *(vocab[marian_id] for marian_id in order[len(SPECIAL_TOKENS) :])]
    source_tokenizer, target_tokenizer = (tokenizer(folder / name, pieces) for name in ("source.spm", "target.spm"))
    weights = read_hf_weights(folder)
    model_config = suite_config(config, len(pieces), "final_logits_bias" in weights)
    model = model_with_weights(folder, model_config, lambda: suite_weights(weights, config, order))
    check_positions(weights, config, folder)
    header = CheckpointHeader(
        task=Task.TRANSLATION,
        model=model_config,
        data=TrainingData(name=f"marian:{config.get('_name_or_path') or folder.name}", root=str(folder)),
        tokenizer=target_tokenizer,
        source_tokenizer=source_tokenizer,
        decoding=decoding_defaults(folder, config),
    )
    return header, model.eval()


def read_folder(
    source: str | Path, kind: str, check: Callable[[dict[str, Any], Path], None]
) -> tuple[Path, dict[str, Any], list[str]]:
    """(folder, config, the piece of each id) of an HF folder of a ``kind`` model (Marian, BART) with config.json
    (checked by ``check``) and vocab.json (``read_vocab``); ImportFailed naming the file otherwise."""
    folder = Path(source)
    if not folder.is_dir():
        raise ImportFailed(f"{folder}: not a folder (a {kind} model is a folder with config.json)")
    config = read_json(folder / "config.json")
    check(config, folder / "config.json")
    return folder, config, read_vocab(folder / "vocab.json", config)


def check_config(config: dict[str, Any], path: Path) -> None:
    """ImportFailed unless ``config`` is a MarianMTModel whose layout the suite's parts can express."""
    check_layout(config, path, "marian", ARCHITECTURE)
    d_model, start = config["d_model"], config.get("decoder_start_token_id")
    if d_model < 2 or d_model % 2:
        raise ImportFailed(f"{path}: d_model must be an even number")
    if start not in (None, config["pad_token_id"]):
        raise ImportFailed(f"{path}: decoder_start_token_id must be the pad token (Marian's layout)")


def check_layout(config: dict[str, Any], path: Path, model_type: str, architecture: str) -> None:
    """ImportFailed unless ``config`` (an HF encoder-decoder config: Marian's, BART's) has ``model_type``,
    ``architecture`` among its architectures, its sizes and special ids as integers, one vocabulary, a known
    activation and heads that divide d_model."""
    if config.get("model_type") != model_type:
        raise ImportFailed(f"{path}: model_type is {config.get('model_type')!r}, not {model_type!r}")
    architectures = config.get("architectures") or [architecture]
    if architecture not in architectures:
        raise ImportFailed(f"{path}: architectures {architectures} do not include {architecture}")
    required = ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim")
    for key in (*required, "pad_token_id", "eos_token_id"):
        if isinstance(config.get(key), bool) or not isinstance(config.get(key), int) or config[key] < 0:
            raise ImportFailed(f"{path}: {key} is missing or not an integer >= 0")
    d_model = config["d_model"]
    problems = {
        "separate encoder and decoder vocabularies are not supported": not config.get(
            "share_encoder_decoder_embeddings", True
        )
        or config.get("decoder_vocab_size", config.get("vocab_size")) != config.get("vocab_size"),
        f"activation_function must be one of {', '.join(ACTIVATIONS)}": config.get("activation_function", "gelu")
        not in ACTIVATIONS,
    }
    for side in ("encoder", "decoder"):
        heads = config.get(f"{side}_attention_heads")
        problems[f"d_model {d_model} is not divisible by {side}_attention_heads {heads}"] = (
            not isinstance(heads, int) or heads < 1 or d_model % heads != 0
        )
    for problem, present in problems.items():
        if present:
            raise ImportFailed(f"{path}: {problem}")


def read_vocab(path: Path, config: dict[str, Any]) -> list[str]:
    """vocab.json (piece -> id) as the piece of each Marian id; ImportFailed unless its ids are exactly
    0 .. vocab_size-1 and it has <unk>."""
    data = read_json(path)
    size = config.get("vocab_size")
    pieces: list[str | None] = [None] * size if isinstance(size, int) and size > 0 else []
    for piece, marian_id in data.items():
        if not isinstance(marian_id, int) or not 0 <= marian_id < len(pieces) or pieces[marian_id] is not None:
            raise ImportFailed(f"{path}: id {marian_id!r} of {piece!r} is not a free id below vocab_size {size}")
        pieces[marian_id] = piece
    if None in pieces or UNK_PIECE not in data:
        raise ImportFailed(f"{path}: needs one piece for every id below vocab_size {size}, {UNK_PIECE} among them")
    return pieces


def suite_order(vocab: list[str], config: dict[str, Any]) -> list[int | None]:
    """The Marian id of each suite id: None for the suite's PAD, then Marian's pad (the suite's BOS), eos,
    unk, then every other Marian id in order."""
    specials = [config["pad_token_id"], config.get("eos_token_id"), vocab.index(UNK_PIECE)]
    if len(set(specials)) != len(specials) or not all(isinstance(i, int) and 0 <= i < len(vocab) for i in specials):
        raise ImportFailed(f"pad, eos and unk ids {specials} must be distinct ids of the vocabulary")
    taken = set(specials)
    return [None, *specials, *(i for i in range(len(vocab)) if i not in taken)]


def tokenizer(path: Path, pieces: list[str]) -> SentencePieceTokenizer:
    if not path.is_file():
        raise ImportFailed(f"{path}: not found (a Marian folder has source.spm and target.spm)")
    try:
        return SentencePieceTokenizer(pieces, path.read_bytes())
    except TokenizerFormatError as error:
        raise ImportFailed(f"{path}: {error}") from None


def suite_config(
    config: dict[str, Any], vocab_size: int, output_bias: bool, encoder: dict | None = None, decoder: dict | None = None
) -> ModelConfig:
    """The suite's model config for a Marian config (post-LN, no final norms, Marian's activation and scale);
    ``encoder`` and ``decoder``: more arguments of each side (BART's positions, embedding norm, prompt)."""
    layout = {
        "normalize_before": False,
        "final_norm": False,
        "scale_embedding": bool(config.get("scale_embedding", False)),
        "activation": config.get("activation_function", "gelu"),
        "dropout": float(config.get("dropout", 0.1)),
    }
    encoder_args = {
        "vocab_size": vocab_size, "d_model": config["d_model"], "num_layers": config["encoder_layers"],
        "num_heads": config["encoder_attention_heads"], "ff_dim": config["encoder_ffn_dim"],
        "max_length": config.get("max_position_embeddings", 512), **layout, **(encoder or {}),
    }
    decoder_args = {
        "d_model": config["d_model"], "num_layers": config["decoder_layers"],
        "num_heads": config["decoder_attention_heads"], "ff_dim": config["decoder_ffn_dim"],
        "tie_embeddings": bool(config.get("tie_word_embeddings", True)), "output_bias": output_bias, **layout,
        **(decoder or {}),
    }
    return ModelConfig(
        "text_transformer_base", "transformer", encoder_args, decoder_args, vocab_size, shared_embeddings=True
    )


def suite_weights(weights: dict[str, Tensor], config: dict[str, Any], order: list[int | None]) -> dict[str, Tensor]:
    """HF Marian's state dict -> the suite EncoderDecoder's (rows of vocabulary tensors in suite order; BART's
    names are the same)."""
    shared = _first(weights, "model.shared.weight", "model.encoder.embed_tokens.weight")
    out: dict[str, Tensor] = {
        "encoder.embedding.weight": _vocab_rows(shared, order),
        "decoder.embedding.weight": _vocab_rows(weights.get("model.decoder.embed_tokens.weight", shared), order),
    }
    if not config.get("tie_word_embeddings", True):
        out["decoder.output.weight"] = _vocab_rows(weights["lm_head.weight"], order)
    if "final_logits_bias" in weights:
        out["decoder.output.bias"] = _vocab_rows(weights["final_logits_bias"].reshape(-1, 1), order).reshape(-1)
    for i in range(config["encoder_layers"]):
        out.update(encoder_layer(weights, f"model.encoder.layers.{i}.", f"encoder.layers.layers.{i}."))
    for i in range(config["decoder_layers"]):
        out.update(decoder_layer(weights, f"model.decoder.layers.{i}.", f"decoder.blocks.{i}."))
    if config.get("tie_word_embeddings", True):
        out["decoder.output.weight"] = out["decoder.embedding.weight"]
    return out


def encoder_layer(weights: dict[str, Tensor], hf: str, suite: str) -> dict[str, Tensor]:
    """One post-LN ``nn.TransformerEncoderLayer`` (fused q, k, v) from a MarianEncoderLayer (or BART's)."""
    out = {f"{suite}self_attn.in_proj_{kind}": _cat(weights, hf + "self_attn.", "qkv", kind) for kind in _KINDS}
    pairs = {"self_attn.out_proj": "self_attn.out_proj", "linear1": "fc1", "linear2": "fc2",
             "norm1": "self_attn_layer_norm", "norm2": "final_layer_norm"}
    for kind in _KINDS:
        out.update({f"{suite}{ours}.{kind}": weights[f"{hf}{theirs}.{kind}"] for ours, theirs in pairs.items()})
    return out


def decoder_layer(weights: dict[str, Tensor], hf: str, suite: str) -> dict[str, Tensor]:
    """One post-LN ``DecoderBlock`` from a MarianDecoderLayer (or BART's)."""
    out = {}
    for kind in _KINDS:
        out[f"{suite}self_attention.qkv.{kind}"] = _cat(weights, hf + "self_attn.", "qkv", kind)
        out[f"{suite}cross_attention.key_value.{kind}"] = _cat(weights, hf + "encoder_attn.", "kv", kind)
        pairs = {"self_attention.out": "self_attn.out_proj", "cross_attention.query": "encoder_attn.q_proj",
                 "cross_attention.out": "encoder_attn.out_proj", "self_norm": "self_attn_layer_norm",
                 "cross_norm": "encoder_attn_layer_norm", "mlp_norm": "final_layer_norm", "mlp.0": "fc1",
                 "mlp.3": "fc2"}
        out.update({f"{suite}{ours}.{kind}": weights[f"{hf}{theirs}.{kind}"] for ours, theirs in pairs.items()})
    return out


_KINDS = ("weight", "bias")


def _cat(weights: dict[str, Tensor], prefix: str, projections: str, kind: str) -> Tensor:
    """q, k, v (or k, v) projections' ``kind`` concatenated along the output rows."""
    return torch.cat([weights[f"{prefix}{name}_proj.{kind}"] for name in projections])


def _vocab_rows(table: Tensor, order: list[int | None]) -> Tensor:
    """(V_marian, D) -> (V_suite, D): row i is Marian's row order[i], zeros for the suite's PAD."""
    index = torch.tensor([0 if marian_id is None else marian_id for marian_id in order])
    rows = table.index_select(0, index).clone()
    rows[0] = 0.0
    return rows


def _first(weights: dict[str, Tensor], *names: str) -> Tensor:
    for name in names:
        if name in weights:
            return weights[name]
    raise KeyError(f"none of {', '.join(names)}")


def check_positions(weights: dict[str, Tensor], config: dict[str, Any], folder: Path) -> None:
    """ImportFailed when a stored position table is not the sinusoids the suite computes (sin half, cos half)."""
    for side in ("encoder", "decoder"):
        table = weights.get(f"model.{side}.embed_positions.weight")
        if table is None:
            continue
        expected = sinusoidal_positions(torch.arange(table.shape[0]), config["d_model"])
        if table.shape != expected.shape or (table.float() - expected).abs().max() > POSITION_TOLERANCE:
            raise ImportFailed(f"{folder}: the {side}'s position table is not Marian's sinusoidal one")


def generation_settings(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The generation settings HF's ``from_pretrained`` reads: generation_config.json when the folder has one,
    else config.json."""
    path = folder / "generation_config.json"
    return read_json(path) if path.is_file() else config


def decoding_defaults(folder: Path, config: dict[str, Any], prompt: int = 0) -> DecodingDefaults:
    """Beam size, max length, length penalty, repeated n-gram ban, early stopping and forced EOS from the
    generation settings (``generation_settings``; HF's defaults where they say nothing). HF's max_length counts
    the decoder start token and the ``prompt`` tokens the suite's decoder reads after it (BART's forced ``<s>``),
    whose lengths HF's beam search counts too (``length_offset``); the suite's max_length counts generated tokens
    only (HF generates 20 new tokens when no max_length is set)."""
    generation = generation_settings(folder, config)
    value = {key: generation.get(key, default) for key, default in HF_DEFAULTS.items()}
    max_length = generation.get("max_length")
    return DecodingDefaults(
        beam_size=int(value["num_beams"]),
        max_length=max(1, (HF_DEFAULT_NEW_TOKENS if max_length is None else int(max_length) - 1) - prompt),
        length_penalty=float(value["length_penalty"]),
        no_repeat_ngram_size=int(value["no_repeat_ngram_size"]),  # HF's (none by default), not the suite's 4
        end_at_max_length=generation.get("forced_eos_token_id") == config["eos_token_id"],
        early_stopping=value["early_stopping"] is True,  # "never" (a heuristic on max_length) decodes as False
        length_offset=prompt,
    )
