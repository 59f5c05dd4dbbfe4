"""An exported text-out model on onnxruntime: ``encode`` once per input, then ``step`` token by token (numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multimodal_s2s.errors import first_line
from multimodal_s2s.onnx_runtime.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    ENCODER_INPUTS,
    ExportFormatError,
    Manifest,
    read_manifest,
)


@dataclass
class EncodedMemory:
    """What the encoder graph computes once per input: cross_kv (layers, 2, B, H, T, Dh), memory_bias (B, T)
    (0 on valid rows, -inf on padding)."""

    cross_kv: np.ndarray
    memory_bias: np.ndarray

    @property
    def batch(self) -> int:
        return self.memory_bias.shape[0]

    def rows(self, index: list[int]) -> EncodedMemory:
        """The examples ``index``, in that order."""
        return EncodedMemory(self.cross_kv[:, :, index], self.memory_bias[index])


@dataclass
class StepResult:
    """logits (N, V) float32, attention (N, T), present: per layer (2, N, H, P+1, Dh)."""

    logits: np.ndarray
    attention: np.ndarray
    present: list[np.ndarray]


class OnnxTextModel:
    """encoder.onnx and decoder.onnx of an export folder in onnxruntime sessions (CPU unless ``providers``).

    ``encoder_runs`` counts the encoder calls (the encoder runs once per input batch, never per step).
    """

    def __init__(self, folder: str | Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime

        self.manifest: Manifest = read_manifest(folder)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        self.encoder = _session(onnxruntime, self.manifest, ENCODER_FILE, options, providers)
        self.decoder = _session(onnxruntime, self.manifest, DECODER_FILE, options, providers)
        graph = self.manifest.graph
        self.layers, self.heads, self.head_dim = graph["layers"], graph["heads"], graph["head_dim"]
        self.vocab_size: int = graph["vocab_size"]
        self.input_names = ENCODER_INPUTS[self.manifest.task]
        self.encoder_runs = 0

    def encode(self, inputs: np.ndarray, lengths: np.ndarray | None = None) -> EncodedMemory:
        """images (B, 3, H, W) float32; or features (B, n_mels, F) float32 / tokens (B, L) int64 with lengths (B,)."""
        feeds = {self.input_names[0]: inputs}
        if len(self.input_names) > 1:
            feeds[self.input_names[1]] = np.asarray(lengths, dtype=np.int64)
        self.encoder_runs += 1
        cross_kv, memory_bias = self.encoder.run(None, feeds)
        return EncodedMemory(cross_kv, memory_bias)

    def empty_cache(self, rows: int) -> list[np.ndarray]:
        """The self-attention cache before the first step: per layer (2, rows, H, 0, Dh)."""
        return [np.zeros((2, rows, self.heads, 0, self.head_dim), dtype=np.float32) for _ in range(self.layers)]

    def step(self, tokens: np.ndarray, position: int, past: list[np.ndarray], memory: EncodedMemory) -> StepResult:
        """tokens (N,) int64 at ``position`` after ``past`` (per layer (2, N, H, position, Dh)); N = B * g rows,
        g consecutive rows per example of ``memory`` (B examples)."""
        feeds = {
            "tokens": tokens.reshape(-1, 1).astype(np.int64, copy=False),
            "position": np.asarray(position, dtype=np.int64),
            "cross_kv": memory.cross_kv,
            "memory_bias": memory.memory_bias,
            **{f"past_{i}": layer for i, layer in enumerate(past)},
        }
        logits, attention, *present = self.decoder.run(None, feeds)
        return StepResult(logits, attention, present)


def _session(onnxruntime, manifest: Manifest, name: str, options, providers: list[str]):
    """An InferenceSession of ``name``, or ExportFormatError in one line (e.g. an opset this onnxruntime lacks)."""
    path = manifest.file(name)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types, one per failure kind
        versions = manifest.data.get("versions", {})
        raise ExportFormatError(
            f"{path}: onnxruntime {onnxruntime.__version__} cannot load it (opset {versions.get('opset')}, "
            f"IR {versions.get('ir')}): {first_line(error)}"
        ) from None
