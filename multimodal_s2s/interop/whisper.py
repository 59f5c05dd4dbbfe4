"""whisper checkpoints as suite ASR checkpoints.

Three sources: an openai-whisper ``.pt`` file (``{"dims", "model_state_dict"}``, read with
``torch.load(weights_only=True)``); an HF Whisper folder (config.json and model.safetensors or
pytorch_model.bin); or a name ``openai-whisper:NAME`` (tiny, base.en, large-v3, ...), which whisper's own
loader finds in its cache (~/.cache/whisper) or downloads there.

The model becomes the suite's ``audio_transformer`` encoder and ``transformer`` decoder in whisper's layout:
the whisper front end (two convolutions, its sinusoid table, a fixed 30 s input), pre-LN blocks with
LayerNorm eps 1e-5 and exact GELU, a final LayerNorm on each side; whisper's keys have no bias, which is a
zero bias in the suite's fused projections (softmax ignores it); learned decoder positions, no embedding
scale, the output tied to the embedding without bias, and whisper's prompt (language, task, no timestamps)
read after BOS by the decoder. The tokenizer is whisper's (``tokenizers.whisper``, carried in the checkpoint,
ids in the suite's order: ``WhisperTokenizer.order``), the features whisper's log-mel, the decoding rules
whisper's: its suppressed tokens (``suppress_tokens="-1"``), blank suppression at the first step, its beam
search, at most ``n_text_ctx // 2`` tokens.
"""

from __future__ import annotations

import os
import pickle
import re
import urllib.error
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from multimodal_s2s.checkpoint import AudioPreprocessing, CheckpointHeader, DecodingDefaults, Task, TrainingData
from multimodal_s2s.errors import first_line
from multimodal_s2s.interop.whisper_text import suppression, tokenizer_for
from multimodal_s2s.interop.writing import ImportFailed, model_with_weights, read_hf_weights, read_json
from multimodal_s2s.models import ModelConfig
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE

NAME_PREFIX = "openai-whisper:"
DIMS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
        "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")
#: HF WhisperConfig keys of each whisper dimension.
HF_DIMS = {"n_mels": "num_mel_bins", "n_audio_ctx": "max_source_positions", "n_audio_state": "d_model",
           "n_audio_head": "encoder_attention_heads", "n_audio_layer": "encoder_layers", "n_vocab": "vocab_size",
           "n_text_ctx": "max_target_positions", "n_text_state": "d_model",
           "n_text_head": "decoder_attention_heads", "n_text_layer": "decoder_layers"}
HF_ARCHITECTURES = ("WhisperForConditionalGeneration", "WhisperModel")
#: HF Whisper's parameter names -> whisper's (the inverse of HF's convert_openai_to_hf script).
HF_RENAMES = [
    (r"^model\.", ""), (r"^proj_out\.weight$", ""), (r"\.layers\.", ".blocks."),
    (r"encoder_attn_layer_norm", "cross_attn_ln"),
    (r"self_attn_layer_norm", "attn_ln"), (r"final_layer_norm", "mlp_ln"), (r"encoder_attn\.", "cross_attn."),
    (r"self_attn\.", "attn."), (r"q_proj", "query"), (r"k_proj", "key"), (r"v_proj", "value"), (r"out_proj", "out"),
    (r"\.fc1\.", ".mlp.0."), (r"\.fc2\.", ".mlp.2."), (r"^encoder\.layer_norm", "encoder.ln_post"),
    (r"^decoder\.layer_norm", "decoder.ln"), (r"embed_positions\.weight", "positional_embedding"),
    (r"embed_tokens", "token_embedding"),
]
#: Decoding of the imported model: whisper's command line's beam, HF's length normalisation (whisper's
#: ``length_penalty=None``: the mean log-probability per token).
BEAM_SIZE, LENGTH_PENALTY = 5, 1.0
#: VAD windows are joined up to this many seconds (whisper reads 30 s at a time; shorter segments time better).
MERGE_SECONDS = 10.0
#: Window decoding allows this margin over the tokens per second (``pipelines.window_decoding``).
DECODE_MARGIN = 1.5


def import_checkpoint(source: str | Path, language: str = "en") -> tuple[CheckpointHeader, nn.Module]:
    """A whisper ``.pt`` file, an HF Whisper folder or ``openai-whisper:NAME`` -> (ASR header, suite model),
    transcribing ``language`` (multilingual models; the English-only ones have no language token).
    ImportFailed (one line naming the file) when it is not whisper's, is truncated, or cannot be expressed."""
    text = str(source)
    if text.startswith(NAME_PREFIX):
        path = cached_model(text[len(NAME_PREFIX) :])
        dims, weights = read_whisper_file(path)
    elif Path(text).is_dir():
        path = Path(text)
        dims, weights = read_hf_folder(path)
    elif Path(text).is_file():
        path = Path(text)
        dims, weights = read_whisper_file(path)
    else:
        raise ImportFailed(f"{text}: not found (give a whisper .pt file, an HF Whisper folder or {NAME_PREFIX}NAME)")
    check_dims(dims, path)
    tokenizer = tokenizer_for(dims["n_vocab"], path)
    if tokenizer.multilingual and language not in tokenizer.languages:
        raise ImportFailed(f"{path}: language {language!r} is not one of the model's {len(tokenizer.languages)}")
    model_config = suite_config(dims, tokenizer, language)
    model = model_with_weights(path, model_config, lambda: suite_weights(weights, dims, tokenizer.order), "dims")
    sample_len = dims["n_text_ctx"] // 2
    header = CheckpointHeader(
        task=Task.ASR,
        model=model_config,
        data=TrainingData(name=f"whisper:{path.stem if path.is_file() else path.name}", root=str(path)),
        preprocessing=AudioPreprocessing(
            sample_rate=SAMPLE_RATE, max_seconds=float(MAX_WINDOW_SECONDS), median_seconds=MERGE_SECONDS,
            tokens_per_second=sample_len / (MAX_WINDOW_SECONDS * DECODE_MARGIN), log_mel="whisper",
        ),
        tokenizer=tokenizer,
        decoding=DecodingDefaults(
            beam_size=BEAM_SIZE, max_length=sample_len, length_penalty=LENGTH_PENALTY, no_repeat_ngram_size=0,
            beam_rule="whisper", **suppression(tokenizer),
        ),
    )
    return header, model.eval()


def cached_model(name: str) -> Path:
    """whisper's file for model ``name``, from its cache or downloaded there by its own loader (which checks
    the file's SHA-256); ImportFailed naming the ways to give the weights when that is impossible."""
    try:
        import whisper
    except ImportError:
        raise ImportFailed(f"{NAME_PREFIX}{name}: needs the openai-whisper package (pip install openai-whisper), "
                           "or give a whisper .pt file or an HF Whisper folder") from None
    if name not in whisper._MODELS:
        raise ImportFailed(f"{NAME_PREFIX}{name}: unknown model (known: {', '.join(whisper.available_models())})")
    root = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
    target = root / Path(whisper._MODELS[name]).name
    try:
        return Path(whisper._download(whisper._MODELS[name], str(root), in_memory=False))
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise ImportFailed(
            f"{NAME_PREFIX}{name}: not in whisper's cache ({target}) and it cannot be downloaded "
            f"({first_line(error)}); where a network exists run `python -c \"import whisper; whisper.load_model"
            f"('{name}')\"` and copy {target.name} here, then import that file, or import an HF Whisper folder"
        ) from None


def read_whisper_file(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(dims, state dict) of an openai-whisper checkpoint, read without unpickling code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as error:
        raise ImportFailed(f"{path}: unreadable or truncated (not a whisper checkpoint? {first_line(error)})") from None
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= set(checkpoint):
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ImportFailed(f"{path}: not a whisper checkpoint (expected keys dims and model_state_dict, got {keys})")
    dims, weights = checkpoint["dims"], checkpoint["model_state_dict"]
    if not isinstance(dims, dict) or not isinstance(weights, dict):
        raise ImportFailed(f"{path}: dims and model_state_dict must be dicts")
    return dims, weights


def read_hf_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(whisper dims, whisper-named state dict) of an HF Whisper folder."""
    config_path = folder / "config.json"
    config = read_json(config_path)
    if config.get("model_type") != "whisper":
        raise ImportFailed(f"{config_path}: model_type is {config.get('model_type')!r}, not 'whisper'")
    architectures = config.get("architectures") or list(HF_ARCHITECTURES[:1])
    if not set(architectures) & set(HF_ARCHITECTURES):
        known = ", ".join(HF_ARCHITECTURES)
        raise ImportFailed(f"{config_path}: architectures {architectures} include none of {known}")
    problems = {
        "d_model": config.get("encoder_ffn_dim") != 4 * config.get("d_model", 0)
        or config.get("decoder_ffn_dim") != 4 * config.get("d_model", 0),
        "activation_function": config.get("activation_function", "gelu") != "gelu",
        "scale_embedding": bool(config.get("scale_embedding", False)),
    }
    for key, wrong in problems.items():
        if wrong:
            raise ImportFailed(f"{config_path}: {key} differs from whisper's layout (ffn 4 x d_model, gelu, no scale)")
    dims = {name: config.get(key) for name, key in HF_DIMS.items()}
    weights = {}
    for key, value in read_hf_weights(folder).items():
        for pattern, replacement in HF_RENAMES:
            key = re.sub(pattern, replacement, key)
        if key:
            weights[key] = value
    return dims, weights


def check_dims(dims: dict[str, Any], path: Path) -> None:
    """ImportFailed unless ``dims`` are whisper's ten positive integers in a layout the suite expresses."""
    for name in DIMS:
        value = dims.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ImportFailed(f"{path}: dims.{name} is missing or not an integer >= 1 (got {value!r})")
    problems = {
        f"n_audio_state {dims['n_audio_state']} differs from n_text_state {dims['n_text_state']}":
            dims["n_audio_state"] != dims["n_text_state"],
        f"n_audio_state {dims['n_audio_state']} must be even and >= 4": dims["n_audio_state"] % 2
        or dims["n_audio_state"] < 4,
        f"n_audio_state is not divisible by n_audio_head {dims['n_audio_head']}":
            dims["n_audio_state"] % dims["n_audio_head"],
        f"n_text_state is not divisible by n_text_head {dims['n_text_head']}":
            dims["n_text_state"] % dims["n_text_head"],
        f"n_audio_ctx {dims['n_audio_ctx']} is not whisper's 30 s (1500 rows)": 2 * dims["n_audio_ctx"]
        != MAX_WINDOW_SECONDS * SAMPLE_RATE // 160,
        f"n_text_ctx {dims['n_text_ctx']} leaves no room to decode after the prompt": dims["n_text_ctx"] < 16,
    }
    for problem, present in problems.items():
        if present:
            raise ImportFailed(f"{path}: {problem}")


def suite_config(dims: dict[str, Any], tokenizer: Any, language: str) -> ModelConfig:
    """The suite's model config in whisper's layout (module docstring)."""
    width = dims["n_audio_state"]
    encoder_args = {
        "n_mels": dims["n_mels"], "d_model": width, "num_layers": dims["n_audio_layer"],
        "num_heads": dims["n_audio_head"], "ff_dim": 4 * width, "dropout": 0.0, "frontend": "whisper",
        "audio_rows": dims["n_audio_ctx"], "norm_eps": 1e-5,
    }
    prompt = ([f"<|{language}|>", "<|transcribe|>"] if tokenizer.multilingual else []) + ["<|notimestamps|>"]
    decoder_args = {
        "d_model": width, "num_layers": dims["n_text_layer"], "num_heads": dims["n_text_head"], "ff_dim": 4 * width,
        "dropout": 0.0, "tie_embeddings": True, "scale_embedding": False, "positions": "learned",
        "max_positions": dims["n_text_ctx"], "prompt": [tokenizer.token_id(token) for token in prompt],
    }
    vocab_size = tokenizer.vocab_size
    return ModelConfig("audio_transformer_base", "transformer", encoder_args, decoder_args, vocab_size=vocab_size)


def suite_weights(weights: dict[str, Tensor], dims: dict[str, Any], order: list[int]) -> dict[str, Tensor]:
    """whisper's state dict -> the suite EncoderDecoder's (float32; vocabulary rows in suite order).
    KeyError for a missing key, RuntimeError (from ``_take``) for one left over."""
    weights = {key: value.float() for key, value in weights.items()}
    embedding = weights.pop("decoder.token_embedding.weight").index_select(0, torch.tensor(order))
    out = {
        "encoder.frontend.positions": weights.pop("encoder.positional_embedding"),
        "decoder.embedding.weight": embedding, "decoder.output.weight": embedding,
        "decoder.positions.weight": weights.pop("decoder.positional_embedding"),
    }
    renames = {"encoder.frontend.conv1": "encoder.conv1", "encoder.frontend.conv2": "encoder.conv2",
               "encoder.norm": "encoder.ln_post", "decoder.final_norm": "decoder.ln"}  # ours -> whisper's
    for i in range(dims["n_audio_layer"]):
        ours, theirs = f"encoder.blocks.{i}.", f"encoder.blocks.{i}."
        out[ours + "attn.qkv.weight"], out[ours + "attn.qkv.bias"] = _fused(weights, theirs + "attn.", "qkv")
        renames.update({ours + "attn.proj": theirs + "attn.out", ours + "norm1": theirs + "attn_ln",
                        ours + "mlp.fc1": theirs + "mlp.0", ours + "mlp.fc2": theirs + "mlp.2",
                        ours + "norm2": theirs + "mlp_ln"})
    for i in range(dims["n_text_layer"]):
        ours, theirs = f"decoder.blocks.{i}.", f"decoder.blocks.{i}."
        out[ours + "self_attention.qkv.weight"], out[ours + "self_attention.qkv.bias"] = _fused(
            weights, theirs + "attn.", "qkv"
        )
        out[ours + "cross_attention.key_value.weight"], out[ours + "cross_attention.key_value.bias"] = _fused(
            weights, theirs + "cross_attn.", "kv"
        )
        renames.update({ours + "self_attention.out": theirs + "attn.out", ours + "self_norm": theirs + "attn_ln",
                        ours + "cross_attention.query": theirs + "cross_attn.query",
                        ours + "cross_attention.out": theirs + "cross_attn.out",
                        ours + "cross_norm": theirs + "cross_attn_ln", ours + "mlp.0": theirs + "mlp.0",
                        ours + "mlp.3": theirs + "mlp.2", ours + "mlp_norm": theirs + "mlp_ln"})
    for ours, theirs in renames.items():
        for kind in ("weight", "bias"):
            out[f"{ours}.{kind}"] = weights.pop(f"{theirs}.{kind}")
    if weights:
        raise RuntimeError(f"weights whisper's layout does not have: {', '.join(sorted(weights)[:3])}")
    return out


def _fused(weights: dict[str, Tensor], prefix: str, names: str) -> tuple[Tensor, Tensor]:
    """The q, k, v (or k, v) projections of ``prefix`` as one weight and bias; whisper's key has no bias (zeros)."""
    full = {"q": "query", "k": "key", "v": "value"}
    projections = [weights.pop(f"{prefix}{full[name]}.weight") for name in names]
    biases = [weights.pop(f"{prefix}{full[name]}.bias", None) for name in names]
    biases = [torch.zeros(p.shape[0]) if b is None else b for p, b in zip(projections, biases, strict=True)]
    return torch.cat(projections), torch.cat(biases)
