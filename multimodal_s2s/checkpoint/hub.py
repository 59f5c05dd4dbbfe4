"""A Hub folder: a checkpoint in huggingface_hub's layout, and reading one from a folder or a repository id.

A Hub folder holds ``config.json`` (``library_name``, the header as ``CheckpointHeader.to_dict`` writes it and
the optimizer steps), ``model.safetensors`` (the weights under their checkpoint keys, ``model.*`` and
``ctc_head.*``; a tensor tied to another, as the decoders' output projection to their embedding, is stored
once and named in the file's metadata), the tokenizers that have a standard form as their own files (a BPE
tokenizer as the ``tokenizers`` library's ``tokenizer.json``, a SentencePiece model as its ``.spm``; the
header names the file in their place; word and character tokenizers stay in the header) and ``README.md``,
a model card (``pipelines.hub_card``). Reading never unpickles: JSON and safetensors only. ``read_model``
takes what a user names: a checkpoint file, a Hub folder, or a repository id ("user/name"), which
huggingface_hub resolves into its cache (``HF_HOME`` / ``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1``: the cache only).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import huggingface_hub
import safetensors
import safetensors.torch
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from torch import Tensor

from multimodal_s2s.checkpoint.files import Checkpoint, read_checkpoint
from multimodal_s2s.checkpoint.header import CheckpointError, CheckpointHeader, Task
from multimodal_s2s.errors import first_line

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"
LIBRARY_NAME = "multimodal_s2s"
#: The layout of config.json; a newer one is refused in one line.
HUB_FORMAT = 1
#: The safetensors metadata key naming the tied tensors: {left-out key: the key stored}.
TIED_KEY = "mms2s.tied"
#: tokenizer type -> (its field holding the standard form, that field as file bytes, file bytes as that field).
TOKENIZER_FILES: dict[str, tuple[str, Callable[[str], bytes], Callable[[bytes], str]]] = {
    "bpe": ("hf_tokenizer", str.encode, bytes.decode),
    "sentencepiece": ("model", base64.b64decode, lambda data: base64.b64encode(data).decode("ascii")),
}
#: header key -> the file of its tokenizer, per tokenizer type.
TOKENIZER_FILE_NAMES = {
    "tokenizer": {"bpe": "tokenizer.json", "sentencepiece": "target.spm"},
    "source_tokenizer": {"bpe": "source_tokenizer.json", "sentencepiece": "source.spm"},
}
#: What a repository id downloads: the files a Hub folder may hold.
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, *(name for names in TOKENIZER_FILE_NAMES.values()
                                                     for name in names.values())]


def hub_files(header: CheckpointHeader, weights: dict[str, Tensor], training_steps: int | None) -> dict[str, bytes]:
    """The files of a Hub folder (model card aside), by name: config.json, model.safetensors, tokenizer files.
    ``weights``: the checkpoint's entries (``model.*``, ``ctc_head.*``). Local paths of the header (the weights
    a model started from, the training data's folder) are left out: a Hub folder is for others."""
    header = replace(header, model=header.model.without_weights_files(), data=replace(header.data, root=None))
    meta = header.to_dict()
    files: dict[str, bytes] = {}
    for key, names in TOKENIZER_FILE_NAMES.items():
        tokenizer = meta[key]
        if tokenizer is not None and tokenizer["type"] in TOKENIZER_FILES:
            field, to_bytes, _ = TOKENIZER_FILES[tokenizer["type"]]
            name = names[tokenizer["type"]]
            files[name] = to_bytes(tokenizer.pop(field))
            tokenizer["file"] = name
    config = {"library_name": LIBRARY_NAME, "hub_format": HUB_FORMAT, "training_steps": training_steps, "header": meta}
    files[CONFIG_NAME] = (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    tensors, tied = _untied(weights)
    files[WEIGHTS_NAME] = safetensors.torch.save(tensors, metadata={"format": "pt", TIED_KEY: json.dumps(tied)})
    return files


def _untied(weights: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors to store, {left-out key: stored key}): an entry that is the same view of the same memory as an
    earlier one is left out; one that only shares memory with another is copied (safetensors stores neither)."""
    tensors: dict[str, Tensor] = {}
    tied: dict[str, str] = {}
    views: dict[tuple, str] = {}
    memories: set[int] = set()
    for key, value in weights.items():
        value = value.detach().cpu()
        memory = value.untyped_storage().data_ptr()
        view = (memory, value.storage_offset(), tuple(value.shape), value.stride(), value.dtype)
        if view in views:
            tied[key] = views[view]
            continue
        shared = memory in memories
        tensors[key] = value.contiguous().clone() if shared or not value.is_contiguous() else value
        views[view] = key
        memories.add(memory)
    return tensors, tied


def read_hub_folder(folder: str | Path, task: Task | None = None) -> Checkpoint:
    """A Hub folder read as a checkpoint (JSON and safetensors only); ``task``: refuse one of another task.
    CheckpointError (one line naming the folder or file) when it is not a suite Hub folder or a file is
    missing or unreadable."""
    folder = Path(folder)
    config = _read_config(folder)
    meta = config["header"]
    for key, names in TOKENIZER_FILE_NAMES.items():
        if isinstance(meta.get(key), dict) and "file" in meta[key]:
            meta[key] = _tokenizer_from_file(folder, meta[key], names)
    try:
        header = CheckpointHeader.from_dict(meta)
    except CheckpointError as error:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {error}") from None
    if task is not None and header.task != task:
        raise CheckpointError(f"{folder}: the model's task is {header.task.value}, but this needs {Task(task).value}")
    steps = config.get("training_steps")
    return Checkpoint(folder, header, _read_weights(folder / WEIGHTS_NAME), steps if isinstance(steps, int) else None)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a multimodal_s2s Hub folder (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not readable JSON ({first_line(error)})") from None
    library = config.get("library_name") if isinstance(config, dict) else None
    if library != LIBRARY_NAME or not isinstance(config.get("header"), dict):
        other = library or (config.get("model_type") if isinstance(config, dict) else None)
        of = f"of {other!r}" if other else "of another library"
        raise CheckpointError(f"{path}: not a multimodal_s2s Hub folder (a config.json {of}, no multimodal_s2s header)")
    version = config.get("hub_format")
    if not isinstance(version, int) or version > HUB_FORMAT:
        raise CheckpointError(f"{path}: Hub folder format {version!r} is not one this version reads ({HUB_FORMAT})")
    return config


def _tokenizer_from_file(folder: Path, entry: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A tokenizer entry naming its file -> the entry ``tokenizer_from_dict`` reads (its standard form inlined)."""
    kind, name = entry.get("type"), entry["file"]
    if kind not in TOKENIZER_FILES or names.get(kind) != name:
        raise CheckpointError(f"{folder / CONFIG_NAME}: a {kind!r} tokenizer cannot be read from the file {name!r}")
    path = folder / name
    field, _, from_bytes = TOKENIZER_FILES[kind]
    try:
        content = from_bytes(path.read_bytes())
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: tokenizer file missing or unreadable ({first_line(error)})") from None
    return {**{key: value for key, value in entry.items() if key != "file"}, field: content}


def _read_weights(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: the model's weights are missing")
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            tied = json.loads((file.metadata() or {}).get(TIED_KEY, "{}"))
            weights = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (safetensors.SafetensorError, OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(error)})") from None
    missing = sorted(set(tied.values()) - set(weights))
    if missing:
        raise CheckpointError(f"{path}: tied weights name entries that are not in the file: {', '.join(missing)}")
    return weights | {key: weights[stored] for key, stored in tied.items()}


def is_repo_id(source: str) -> bool:
    """Whether ``source`` (not an existing path) names a Hub repository: "user/name", no checkpoint suffix."""
    if source.count("/") != 1 or source.startswith((".", "/", "~")) or source.endswith(".ckpt"):
        return False
    try:
        huggingface_hub.utils.validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def download_repo(repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in the huggingface_hub cache, downloaded there when missing and a
    network is allowed (``HF_HUB_OFFLINE=1``: the cache only). One CheckpointError line otherwise."""
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_FILES, library_name=LIBRARY_NAME))
    except (HfHubHTTPError, OSError, ValueError) as error:  # not cached and no network, no such repository
        offline = ", HF_HUB_OFFLINE=1" if huggingface_hub.constants.HF_HUB_OFFLINE else ""
        cache, reason = huggingface_hub.constants.HF_HUB_CACHE, f"{type(error).__name__}{offline}"
        raise CheckpointError(
            f"{repo_id}: no file or folder of this name, and this Hub repository is not in the Hugging Face cache "
            f"{cache} and cannot be downloaded ({reason}): run once with a network (and a token for "
            "a private one) to cache it, copy a cache that has it to HF_HOME or HF_HUB_CACHE, or give a folder "
            "written by save_pretrained or 'mms2s export --format hub'"
        ) from None


def read_model(source: str | Path, task: Task | None = None) -> Checkpoint:
    """What a user names as a model, read safely: a checkpoint file (``read_checkpoint``), a Hub folder
    (``read_hub_folder``) or a Hub repository id ("user/name", ``download_repo``). ``task``: refuse another."""
    path = Path(source)
    if path.is_dir():
        return read_hub_folder(path, task)
    if path.exists() or not is_repo_id(str(source)):
        return read_checkpoint(path, task)
    return read_hub_folder(download_repo(str(source)), task)
