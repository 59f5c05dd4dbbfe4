"""The manifest of an exported text-out model (``manifest.json``): what the folder holds and which versions made
it, read and checked without torch.

Layout of an export folder::

    manifest.json   format, suite/opset/IR versions, the checkpoint header (task, model config, tokenizers,
                    preprocessing, decoding defaults), graph shapes, the validation figures
    encoder.onnx    inputs -> cross_kv (layers, 2, B, H, T, Dh), memory_bias (B, T)
    decoder.onnx    one cached step: tokens (N, 1), position (), cross_kv, memory_bias, past_0 .. past_{layers-1}
                    (2, N, H, P, Dh) -> logits (N, V), attention (N, T), present_0 .. (2, N, H, P+1, Dh);
                    N = B * g rows, g consecutive rows per example (beams) sharing its memory
    mel_filters.npy (ASR) the mel filterbank (n_mels, 201) of the log-mel frontend
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = "mms2s-onnx-text"
FORMAT_VERSION = 1
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
MEL_FILTERS_FILE = "mel_filters.npy"
#: Encoder input names by task.
ENCODER_INPUTS = {"captioning": ("images",), "asr": ("features", "lengths"), "translation": ("tokens", "lengths")}


def step_input_names(layers: int) -> list[str]:
    return ["tokens", "position", "cross_kv", "memory_bias", *(f"past_{i}" for i in range(layers))]


def step_output_names(layers: int) -> list[str]:
    return ["logits", "attention", *(f"present_{i}" for i in range(layers))]


class ExportFormatError(ValueError):
    """An export folder that this runtime cannot use: missing files, another format or versions that differ."""


def suite_version() -> str:
    """The installed multimodal_s2s version ("unknown" when it runs from a source tree that is not installed)."""
    try:
        return metadata.version("multimodal_s2s")
    except metadata.PackageNotFoundError:
        return "unknown"


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a manifest.json (an export, checked or not)."""
    return (Path(path) / MANIFEST_NAME).is_file()


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says (see the module docstring); ``folder`` is where it was read."""

    folder: Path
    data: dict[str, Any]

    @property
    def task(self) -> str:
        return self.data["header"]["task"]

    @property
    def header(self) -> dict[str, Any]:
        return self.data["header"]

    @property
    def graph(self) -> dict[str, Any]:
        """layers, heads, head_dim, vocab_size of the decoder graph."""
        return self.data["graph"]

    def file(self, name: str) -> Path:
        return self.folder / name

    def decoding(self) -> dict[str, Any]:
        """The checkpoint's decoding defaults (beam_size, max_length, length_penalty, ...)."""
        return self.header.get("decoding") or {}


def read_manifest(folder: str | Path) -> Manifest:
    """Read and check ``folder/manifest.json``: ExportFormatError (one line naming the file) when it is missing
    or unreadable, of another format, or made by a suite or ONNX whose versions differ from this runtime's."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ExportFormatError(f"{folder}: not an ONNX export (no {MANIFEST_NAME}; make one with mms2s export)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportFormatError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExportFormatError(f"{path}: not a {FORMAT} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise ExportFormatError(
            f"{path}: format version {data.get('format_version')!r}, this runtime reads {FORMAT_VERSION}: re-export it"
        )
    _check_versions(path, data.get("versions", {}))
    for name in (ENCODER_FILE, DECODER_FILE):
        if not (path.parent / name).is_file():
            raise ExportFormatError(f"{path.parent}: {name} is missing")
    return Manifest(path.parent, data)


def _check_versions(path: Path, versions: dict[str, Any]) -> None:
    """The suite version must match the installed one (major.minor); opset and IR must be recorded (whether
    onnxruntime runs them is known when the sessions open: ``OnnxTextModel`` reports it in one line)."""
    made_by, here = str(versions.get("suite")), suite_version()
    if "unknown" not in (made_by, here) and made_by.split(".")[:2] != here.split(".")[:2]:
        raise ExportFormatError(f"{path}: exported by multimodal_s2s {made_by}, this is {here}: re-export it")
    for key in ("opset", "ir"):
        if not isinstance(versions.get(key), int):
            raise ExportFormatError(f"{path}: no ONNX {key} version recorded")
