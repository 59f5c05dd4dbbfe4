"""The decode loop on onnxruntime + numpy against the suite's PyTorch decoding, per task: the same tokens on
100 inputs (greedy and beam 4), logits within 1e-4, the encoder run once per input with the cross-attention
keys/values in its graph only, and a cached step whose inputs do not grow but for the self-attention cache."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
import torch
from onnx_fixtures import TASKS, encoder_inputs

from multimodal_s2s.checkpoint import read_checkpoint
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.onnx_export.text import TOLERANCE, example_inputs, max_difference
from multimodal_s2s.onnx_runtime.model import OnnxTextModel
from multimodal_s2s.onnx_runtime.search import SearchOptions, search

INPUTS = 100
SEARCHES = {
    "greedy": DecodingOptions(max_length=12, return_attention=True),
    "beam4": DecodingOptions(beam_size=4, n_best=4, max_length=12, length_penalty=1.0, return_attention=True),
    "beam4-constrained": DecodingOptions(beam_size=4, max_length=8, min_length=2, no_repeat_ngram_size=2,
                                         end_at_max_length=True),
}


def _pytorch_model(checkpoint):
    return model_from_checkpoint(read_checkpoint(checkpoint))


@pytest.mark.parametrize("search_name", list(SEARCHES))
@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.value)
def test_onnx_tokens_equal_pytorchs_on_100_inputs(exports, task, search_name):
    checkpoint, folder = exports[task]
    options = SEARCHES[search_name]
    inputs, lengths = encoder_inputs(task, INPUTS)
    expected = decode(_pytorch_model(checkpoint), torch.from_numpy(inputs), options,
                      None if lengths is None else torch.from_numpy(lengths))
    model = OnnxTextModel(folder)
    got = search(model, model.encode(inputs, lengths), options)
    assert sum(e.tokens == g.tokens for e, g in zip(expected, got, strict=True)) == INPUTS
    assert [[t for t, _ in e.n_best] for e in expected] == [[t for t, _ in g.n_best] for g in got]
    np.testing.assert_allclose([g.score for g in got], [e.score for e in expected], atol=1e-4)
    if options.return_attention:
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g.attention, e.attention.numpy(), atol=1e-5)


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.value)
def test_onnx_logits_agree_with_pytorchs_within_1e_4(exports, task):
    checkpoint, folder = exports[task]
    checkpoint = read_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint)
    examples = [(inputs[:7], None if lengths is None else lengths[:7]) for inputs, lengths in [encoder_inputs(task, 7)]]
    assert max_difference(model, OnnxTextModel(folder), examples + example_inputs(checkpoint.header, model)) < TOLERANCE
    assert TOLERANCE == 1e-4


def test_the_encoder_runs_once_per_input_and_holds_the_cross_attention_projections(exports):
    _, folder = exports[TASKS[0]]
    model = OnnxTextModel(folder)
    inputs, _ = encoder_inputs(TASKS[0], 3)
    search(model, model.encode(inputs), SearchOptions(beam_size=4, max_length=10))
    assert model.encoder_runs == 1
    weights = {name: {init.name for init in onnx.load(str(folder / name)).graph.initializer}
               for name in ("encoder.onnx", "decoder.onnx")}
    assert any("key_value" in name for name in weights["encoder.onnx"])  # memory -> keys/values, once per input
    assert not any("key_value" in name for name in weights["decoder.onnx"])  # no step can project the memory
    assert [i.name for i in model.decoder.get_inputs()] == ["tokens", "position", "cross_kv", "memory_bias", "past_0"]


class _Recording:
    """A decoder session that records the shapes it is fed at each step."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, names, feeds):
        self.shapes.append({name: np.shape(value) for name, value in feeds.items()})
        return self.session.run(names, feeds)


def test_only_the_self_attention_cache_grows_with_the_output(exports):
    _, folder = exports[TASKS[0]]
    model = OnnxTextModel(folder)
    model.decoder = _Recording(model.decoder)
    inputs, _ = encoder_inputs(TASKS[0], 2)
    memory = model.encode(inputs)
    tokens, past = np.full(8, 5), model.empty_cache(8)  # 4 beams per example
    for position in range(61):
        result = model.step(tokens, position, past, memory)
        assert [layer.shape[3] for layer in result.present] == [position + 1] * model.layers
        past = result.present
    step5, step60 = model.decoder.shapes[5], model.decoder.shapes[60]
    caches = {f"past_{i}" for i in range(model.layers)}
    assert {name: shape for name, shape in step5.items() if name not in caches} == {
        name: shape for name, shape in step60.items() if name not in caches}
    for name in caches:
        assert step60[name][3] - step5[name][3] == 55 and step5[name][:3] == step60[name][:3]
    assert step60["cross_kv"][2] == 2  # the memory of the 2 examples, not of their 8 rows


def _median_step_seconds(model, memory, past, repeats: int) -> float:
    tokens, times = np.full(memory.batch, 5), []
    for _ in range(repeats):
        start = time.perf_counter()
        model.step(tokens, past[0].shape[3], past, memory)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def test_the_cached_steps_time_does_not_grow_with_the_output(exports):
    _, folder = exports[TASKS[0]]
    model = OnnxTextModel(folder, threads=1)
    inputs, _ = encoder_inputs(TASKS[0], 4)
    memory = model.encode(inputs)
    rng = np.random.default_rng(0)
    pasts = {length: [rng.standard_normal((2, 4, model.heads, length, model.head_dim), dtype=np.float32)
                      for _ in range(model.layers)] for length in (5, 60)}
    rounds = {5: [], 60: []}
    for _ in range(20):  # alternated rounds, median of medians: robust to a busy neighbour (0.2 s in all)
        for length, past in pasts.items():
            rounds[length].append(_median_step_seconds(model, memory, past, 25))
    assert np.median(rounds[60]) <= 1.3 * np.median(rounds[5])
