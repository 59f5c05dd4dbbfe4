"""Export a text-out checkpoint (captioning, ASR, translation; Transformer decoder) to an ONNX folder that
``onnx_runtime`` decodes without torch (layout: ``onnx_runtime.manifest``).

The folder is built in a temporary sibling, checked against PyTorch (encoder keys/values, then the logits and
cross-attention of cached steps of two batches of other shapes, within ``TOLERANCE``), and only then renamed
into place. ``quantize="int8"``: the graphs' MatMul/Gemm weights are quantized afterwards
(``onnxruntime.quantization.quantize_dynamic``); the int8 logits' difference is reported, not bounded.
The encoder graph goes through ``torch.export`` (``dynamo=True``): a traced ``nn.MultiheadAttention`` (the text
encoders') keeps the example's length as a constant. The step graph, this package's own code without control
flow, is traced (``dynamo=False``): a second where ``torch.export`` takes several.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.checkpoint.header import DecodingDefaults
from multimodal_s2s.decoders.text_transformer import TransformerDecoder
from multimodal_s2s.layers.positional import SinusoidalPositions
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.onnx_export.graphs import EncoderGraph, StepGraph
from multimodal_s2s.onnx_runtime.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    ENCODER_INPUTS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MEL_FILTERS_FILE,
    step_input_names,
    step_output_names,
    suite_version,
)
from multimodal_s2s.onnx_runtime.model import OnnxTextModel
from multimodal_s2s.preprocessing.audio import AudioFeatures
from multimodal_s2s.types import BOS_ID

#: Largest |ONNX - PyTorch| logit difference accepted by the check (fp32 graphs).
TOLERANCE = 1e-4
#: Cached steps compared by the check.
CHECK_STEPS = 6
QUANTIZATIONS = ("int8",)


class ExportError(ValueError):
    """A checkpoint that cannot be exported, or an export that does not match PyTorch."""


@dataclass
class ExportReport:
    """What an export did: the folder, its files' sizes (MiB), the max logit difference of the fp32 graphs
    and, with ``quantize``, of the quantized ones."""

    folder: Path
    sizes: dict[str, float]
    max_difference: float
    quantized_difference: float | None = None


def export_text(checkpoint: Checkpoint, out: Path, opset: int, quantize: str | None = None) -> ExportReport:
    """Write the export folder ``out`` (which must not exist, or is replaced) from ``checkpoint``."""
    model = model_from_checkpoint(checkpoint)
    if not isinstance(model.decoder, TransformerDecoder):
        raise ExportError(
            f"{checkpoint.path}: decoder {checkpoint.header.model.decoder!r}: ONNX export supports the Transformer "
            "decoder only"
        )
    if imported_layout(checkpoint, model):
        raise ExportError(
            f"{checkpoint.path}: an imported whisper or BART layout (a decoder prompt, learned positions, an "
            "embedding LayerNorm or decoding rules of its own) is not exported to ONNX yet; use the checkpoint "
            "or a Hub folder"
        )
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        examples = example_inputs(checkpoint.header, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export_graphs(model, checkpoint.header.task, examples[0], work, opset)
        manifest = _manifest(checkpoint, model, work, opset)
        (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if checkpoint.header.task == Task.ASR:
            filters = AudioFeatures(model.encoder.info.n_mels).frontend.melspec.mel_scale.fb  # (201, n_mels)
            np.save(work / MEL_FILTERS_FILE, filters.T.numpy().astype(np.float32))
        difference = max_difference(model, OnnxTextModel(work), examples)
        if difference > TOLERANCE:
            raise ExportError(f"{out}: onnxruntime logits differ from PyTorch by {difference:.2e} > {TOLERANCE}")
        quantized = None
        if quantize is not None:
            quantized = _quantize(work, manifest, model, examples)
        _replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = {path.name: path.stat().st_size / 2**20 for path in sorted(out.iterdir())}
    return ExportReport(out, sizes, difference, quantized)


def imported_layout(checkpoint: Checkpoint, model) -> bool:
    """Whether the model needs what the step graph and the numpy loop do not carry yet: the decoder's prompt
    after BOS, learned positions, a LayerNorm on the embeddings, or decoding rules of its own
    (``DecodingDefaults.rules``: whisper's suppression and beam rule, BART's early stopping)."""
    decoder = model.decoder
    return (len(decoder.prompt) > 0 or not isinstance(decoder.positions, SinusoidalPositions)
            or not isinstance(decoder.embed_norm, torch.nn.Identity)
            or checkpoint.header.decoding.rules() != DecodingDefaults().rules())


def example_inputs(header, model) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Two batches of inputs of different shapes (the second checks the dynamic axes): (inputs, lengths)."""
    rng = np.random.default_rng(0)
    if header.task == Task.CAPTIONING:
        height, width = header.preprocessing.image_size
        return [(rng.standard_normal((2, 3, height, width), dtype=np.float32), None),
                (rng.standard_normal((3, 3, height + 32, width + 16), dtype=np.float32), None)]
    if header.task == Task.ASR:
        mels = model.encoder.info.n_mels
        return [(rng.standard_normal((2, mels, 160), dtype=np.float32), np.array([160, 120])),
                (rng.standard_normal((3, mels, 230), dtype=np.float32), np.array([90, 230, 200]))]
    vocab = header.source_tokenizer.vocab_size
    return [(rng.integers(4, vocab, (2, 12)), np.array([12, 7])),
            (rng.integers(4, vocab, (3, 19)), np.array([5, 19, 11]))]


def _export_graphs(model, task: Task, example: tuple[np.ndarray, np.ndarray | None], folder: Path, opset: int) -> None:
    """encoder.onnx and decoder.onnx (see ``onnx_runtime.manifest``), batch, sizes and lengths dynamic."""
    names = ENCODER_INPUTS[task.value]
    inputs = tuple(torch.from_numpy(array) for array in example if array is not None)
    dynamic = torch.export.Dim.AUTO
    shapes = [{0: dynamic, 2: dynamic, 3: dynamic} if task == Task.CAPTIONING else {0: dynamic, 1: dynamic}]
    if task == Task.ASR:
        shapes = [{0: dynamic, 2: dynamic}]
    shapes += [{0: dynamic}] * (len(names) - 1)
    encoder = EncoderGraph(model).eval()
    program = torch.onnx.export(encoder, inputs, dynamo=True, input_names=list(names), dynamic_shapes=tuple(shapes),
                                output_names=["cross_kv", "memory_bias"], opset_version=opset, verbose=False)
    program.save(str(folder / ENCODER_FILE))
    with torch.no_grad():
        cross_kv, memory_bias = encoder(*inputs)
    layers, _, examples, heads, _, head_dim = cross_kv.shape
    rows = 2 * examples  # two beams per example: the graph groups the rows of an example
    past = [torch.zeros(2, rows, heads, 2, head_dim) for _ in range(layers)]
    step_inputs = (torch.full((rows, 1), BOS_ID), torch.tensor(2), cross_kv, memory_bias, *past)
    names = step_input_names(layers), step_output_names(layers)
    step_axes = {"tokens": {0: "rows"}, "cross_kv": {2: "examples", 4: "memory"}, "logits": {0: "rows"},
                 "memory_bias": {0: "examples", 1: "memory"}, "attention": {0: "rows", 1: "memory"}}
    step_axes.update({name: {1: "rows", 3: "past"} for name in names[0][4:]})
    step_axes.update({name: {1: "rows", 3: "length"} for name in names[1][2:]})
    torch.onnx.export(StepGraph(model.decoder).eval(), step_inputs, str(folder / DECODER_FILE), dynamo=False,
                      input_names=names[0], output_names=names[1], dynamic_axes=step_axes, opset_version=opset)


def max_difference(model, exported: OnnxTextModel, examples) -> float:
    """Max |ONNX - PyTorch| over the encoder's keys/values and the logits and attention of ``CHECK_STEPS``
    cached steps (fed PyTorch's greedy tokens) of each example batch, with 1 and with 3 rows per example."""
    worst = 0.0
    for index, (inputs, lengths) in enumerate(examples):
        memory = exported.encode(inputs, lengths)
        rows = inputs.shape[0] * (1 if index % 2 == 0 else 3)
        with torch.no_grad():
            encoded = model.encode(*_tensors(inputs, lengths))
            torch_kv = EncoderGraph(model)(*_tensors(inputs, lengths))[0]
            worst = max(worst, float(np.abs(memory.cross_kv - torch_kv.numpy()).max()))
            tokens, cache, past = torch.full((rows, 1), BOS_ID), None, exported.empty_cache(rows)
            for position in range(CHECK_STEPS):
                output = model.step(tokens, encoded, cache, return_attention=True)
                result = exported.step(tokens.numpy()[:, 0], position, past, memory)
                cache, past = output.cache, result.present
                worst = max(worst, float(np.abs(result.logits - output.logits[:, -1].numpy()).max()),
                            float(np.abs(result.attention - output.attention[:, -1].numpy()).max()))
                tokens = output.logits[:, -1].argmax(dim=-1, keepdim=True)
    return worst


def _tensors(inputs: np.ndarray, lengths: np.ndarray | None) -> list[torch.Tensor]:
    return [torch.from_numpy(inputs)] + ([] if lengths is None else [torch.from_numpy(lengths)])


def _manifest(checkpoint: Checkpoint, model, folder: Path, opset: int) -> dict:
    """manifest.json's content (see ``onnx_runtime.manifest``)."""
    import onnx
    import onnxruntime

    header, decoder = checkpoint.header, model.decoder
    ir = onnx.load(str(folder / DECODER_FILE), load_external_data=False).ir_version
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {"suite": suite_version(), "opset": opset, "ir": ir, "torch": torch.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "source": str(checkpoint.path),
        "header": {**header.to_dict(), "decoding": asdict(header.decoding)},
        "graph": {"layers": len(decoder.blocks), "heads": decoder.num_heads,
                  "head_dim": decoder.embedding.embedding_dim // decoder.num_heads, "vocab_size": model.vocab_size},
        "quantization": None,
    }


def _quantize(folder: Path, manifest: dict, model, examples) -> float:
    """Quantize both graphs' MatMul/Gemm weights to int8 in place; the max logit difference to PyTorch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in (ENCODER_FILE, DECODER_FILE):
        path = folder / name
        quantized = folder / f"{name}.int8"
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        quantized.replace(path)
    manifest["quantization"] = "int8"
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return max_difference(model, OnnxTextModel(folder), examples)


def _replace(work: Path, out: Path) -> None:
    """Move the finished folder ``work`` to ``out``; an existing ``out`` is removed only once ``work`` is in place."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)
