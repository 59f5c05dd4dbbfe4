"""Silero VAD's packaged network run 2-2.5x faster on a CPU: the same weights, other arithmetic.

The ``silero-vad`` wheel's sequence model (``silero_vad_16k_sequence.onnx``) takes frames of 576 samples (64
of context and the 512-sample frame) and computes, in this order: an STFT as a convolution with a
Hann-windowed DFT basis (258 x 256 taps every 128 samples over the frame and 64 samples reflected past its
end: 4 steps of 129 magnitudes), four 1-D convolutions (kernel 3, padding 1, strides 1, 2, 2, 1) with
ReLUs, an LSTM over the frames and a sigmoid over a 1x1 convolution. onnxruntime spends 41% of that on the
STFT convolution and most of the rest on the small convolutions, each a small GEMM per frame
(``benchmarks/vad_speed.py``).

``matmul_graph`` builds, at load time and from the packaged model's own weights, a graph of the same
function in which the STFT and each convolution are one matrix product over all the frames of a call (the
columns gathered by slicing: the STFT's 4 windows from the frame's 5 hops of 128 samples, a convolution's 3
taps from its padded (frames, steps, channels) input). All of it runs inside onnxruntime, which releases
Python's GIL, so the VAD overlaps with decoding in another thread (numpy's FFT for the STFT was as fast
alone, but its half-dozen calls per block each wait for the GIL: beside a busy Python thread it ran 10x
slower). Probabilities match the packaged
model's to about 1e-6 (``matches_packaged`` checks it on every load; ``vad.load_model`` falls back to the
package's own runner if they do not). onnx and onnxruntime (1.4 s to import) are imported when a runner is
built, so that the frame's constants cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

if TYPE_CHECKING:
    import onnx

#: A frame (one probability) and the previous frame's samples before it, at 16 kHz.
FRAME_SAMPLES, CONTEXT_SAMPLES = 512, 64
#: The packaged model's STFT: hop (samples; its window is 2 hops), and samples reflected past a frame's end.
STFT_HOP, REFLECTED = 128, 64
STFT_STEPS = (CONTEXT_SAMPLES + FRAME_SAMPLES + REFLECTED) // STFT_HOP - 1  # 4 windows per frame
#: The encoder's convolutions (initializer prefix, stride), kernel 3, padding 1, each followed by a ReLU.
ENCODER = (("encoder.0", 1), ("encoder.1", 2), ("encoder.2", 2), ("encoder.3", 1))
LSTM_WEIGHTS = ("onnx::LSTM_209", "onnx::LSTM_210", "onnx::LSTM_211")
HIDDEN = 128
OPSET = 16
#: The largest probability difference from the packaged model that ``matches_packaged`` accepts.
TOLERANCE = 1e-4


class SileroMatmul:
    """Speech probabilities of 32 ms frames, as the package's ``SileroVADSequence.audio_forward`` gives them:
    blocks of frames from its ``frame_blocks``, the LSTM state carried from block to block."""

    def __init__(self, packaged: onnx.ModelProto, frame_blocks: Callable, max_frames: int = 512):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        graph = matmul_graph(packaged).SerializeToString()
        self.session = ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
        self.frame_blocks, self.max_frames = frame_blocks, max_frames

    def audio_forward(self, audio: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(S,) float32 at 16 kHz -> (ceil(S / 512),) speech probabilities."""
        if sampling_rate != SAMPLE_RATE:
            raise ValueError(f"Silero's 16 kHz network needs {SAMPLE_RATE} Hz audio, got {sampling_rate}")
        hidden = cell = np.zeros((1, 1, HIDDEN), np.float32)
        probabilities = [np.zeros(0, np.float32)]
        for block in self.frame_blocks(audio, FRAME_SAMPLES, CONTEXT_SAMPLES, self.max_frames):
            values, hidden, cell = self.session.run(None, {"input": block, "h": hidden, "c": cell})
            probabilities.append(values)
        return np.concatenate(probabilities)


def matches_packaged(model: SileroMatmul, packaged, probe: np.ndarray) -> bool:
    """Whether ``model`` and the package's runner (``audio_forward``) agree within TOLERANCE on ``probe``."""
    difference = np.abs(model.audio_forward(probe) - packaged.audio_forward(probe, SAMPLE_RATE))
    return bool(difference.max(initial=0.0) <= TOLERANCE)


def matmul_graph(packaged: onnx.ModelProto) -> onnx.ModelProto:
    """The packaged network with its weights, the packaged model's inputs and outputs: input (N, 576) frames
    with context, h, c (1, 1, 128) -> speech_probs (N,), hn, cn. KeyError or ValueError where the packaged
    weights are not the ones above."""
    import onnx
    from onnx import helper, numpy_helper

    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in packaged.graph.initializer}
    graph = _GraphBuilder()
    features, steps = _stft_magnitudes(graph, weights["stft.forward_basis_buffer"]), STFT_STEPS
    for prefix, stride in ENCODER:
        features, steps = _convolution(graph, features, steps, weights[f"{prefix}.weight"], weights[f"{prefix}.bias"],
                                       stride)
    if steps != 1:
        raise ValueError(f"the encoder leaves {steps} steps per frame, not 1")
    lstm = [graph.constant(weights[name]) for name in LSTM_WEIGHTS]  # features: (N, 1, 128) = (seq, batch, in)
    graph.nodes.append(helper.make_node("LSTM", [features, *lstm, "", "h", "c"], ["lstm", "hn", "cn"],
                                        hidden_size=HIDDEN))
    rows = graph.node("Relu", graph.node("Reshape", "lstm", graph.constant([-1, HIDDEN])))
    output_weight = weights["output.weight"].reshape(1, HIDDEN).T  # a 1x1 convolution (1, 128, 1)
    logits = graph.node("Add", graph.node("MatMul", rows, graph.constant(output_weight)),
                        graph.constant(weights["output.bias"]))
    graph.node("Reshape", graph.node("Sigmoid", logits), graph.constant([-1]), output="speech_probs")
    state = [1, 1, HIDDEN]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "silero_vad_matmul",
            [_tensor("input", ["frames", CONTEXT_SAMPLES + FRAME_SAMPLES]), _tensor("h", state), _tensor("c", state)],
            [_tensor("speech_probs", ["frames"]), _tensor("hn", state), _tensor("cn", state)],
            graph.constants,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=packaged.ir_version,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


class _GraphBuilder:
    """Nodes and constants of an ONNX graph, each value named by a counter."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def constant(self, value) -> str:
        """An initializer: integers as int64, anything else as float32."""
        from onnx import numpy_helper

        array = np.asarray(value)
        array = array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32)
        self.constants.append(numpy_helper.from_array(np.ascontiguousarray(array), f"constant_{len(self.constants)}"))
        return self.constants[-1].name

    def node(self, op: str, *inputs: str, output: str | None = None, **attributes) -> str:
        from onnx import helper

        output = output or f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, list(inputs), [output], **attributes))
        return output

    def slice(self, value: str, start: int, end: int, axis: int, step: int = 1) -> str:
        return self.node("Slice", value, *(self.constant([bound]) for bound in (start, end, axis, step)))


def _stft_magnitudes(graph: _GraphBuilder, basis: np.ndarray) -> str:
    """(N, 576) frames with context -> (N, 4, F) STFT magnitudes: the frame and 64 samples reflected past its
    end are 5 hops of 128; the 4 windows (2 hops each) times the DFT basis (2 F, 1, 256) in one MatMul."""
    if basis.ndim != 3 or basis.shape[1:] != (1, 2 * STFT_HOP) or basis.shape[0] % 2:
        raise ValueError(f"stft.forward_basis_buffer has shape {basis.shape}, not (2 F, 1, {2 * STFT_HOP})")
    frequencies = basis.shape[0] // 2
    padded = graph.node("Pad", "input", graph.constant([0, 0, 0, REFLECTED]), mode="reflect")
    hops = graph.node("Reshape", padded, graph.constant([-1, STFT_STEPS + 1, STFT_HOP]))
    windows = graph.node("Concat", graph.slice(hops, 0, STFT_STEPS, 1), graph.slice(hops, 1, STFT_STEPS + 1, 1),
                         axis=2)
    spectrum = graph.node("MatMul", windows, graph.constant(basis[:, 0, :].T))  # (N, 4, 2 F): real, imaginary
    power = graph.node("Mul", spectrum, spectrum)
    real, imaginary = graph.slice(power, 0, frequencies, 2), graph.slice(power, frequencies, 2 * frequencies, 2)
    return graph.node("Sqrt", graph.node("Add", real, imaginary))


def _convolution(graph: _GraphBuilder, features: str, steps: int, kernel: np.ndarray, bias: np.ndarray,
                 stride: int) -> tuple[str, int]:
    """(N, steps, C) -> (N, steps', C') ReLU(1-D convolution, kernel (C', C, 3), padding 1) as one MatMul:
    the three taps' columns are strided slices of the padded input, concatenated on the channel axis."""
    if kernel.ndim != 3 or kernel.shape[2] != 3:
        raise ValueError(f"a convolution's weight has shape {kernel.shape}, not (out, in, 3)")
    out_steps = (steps - 1) // stride + 1
    padded = graph.node("Pad", features, graph.constant([0, 1, 0, 0, 1, 0]))
    taps = [graph.slice(padded, tap, tap + stride * (out_steps - 1) + 1, 1, stride) for tap in range(3)]
    matrix = kernel.transpose(2, 1, 0).reshape(-1, kernel.shape[0])  # (3 C, C'), tap-major like the columns
    product = graph.node("MatMul", graph.node("Concat", *taps, axis=2), graph.constant(matrix))
    return graph.node("Relu", graph.node("Add", product, graph.constant(bias))), out_steps


def _tensor(name: str, shape: list) -> onnx.ValueInfoProto:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
