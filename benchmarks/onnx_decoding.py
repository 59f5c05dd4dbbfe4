"""ONNX decoding against the suite's PyTorch path on the CPU: greedy and beam-4, fp32 and dynamic int8 exports,
alternated in one process on the same inputs, for the shapes captioner, an espeak ASR model and the dates
translator.

Each model is exported (``mms2s export --format onnx``, and ``--quantize int8``); then, per search, every round
times the three paths on the same preprocessed batch in turn: PyTorch eager (``decoding.decode``: encoder and
cached decoder), the fp32 export and the int8 export (``onnx_runtime``: encoder once, cached step graph,
numpy search), after one untimed warm-up round. Reported: median seconds per batch, tokens/s, the speed-up
over PyTorch, the share of inputs whose tokens equal PyTorch's, the task's exact-match accuracy against the
references (captions: any reference caption; dates: the ISO date; ASR: the sentence), and a profile of each
path (encoder, decoder steps, the rest: search in torch or numpy). Torch and onnxruntime get the same thread count.

    python benchmarks/onnx_decoding.py --captioner CKPT --asr CKPT --translator CKPT \\
        [--out benchmarks/results/onnx_decoding.json] [--inputs 32] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from multimodal_s2s.checkpoint import read_checkpoint
from multimodal_s2s.data.captioning import SHAPES_SPLIT_SEEDS
from multimodal_s2s.data.dates import date_pairs
from multimodal_s2s.data.espeak import random_voice, sentences, synthesize
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.metrics.text import normalize_caption
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.onnx_export.text import export_text
from multimodal_s2s.onnx_runtime.model import OnnxTextModel
from multimodal_s2s.onnx_runtime.search import search
from multimodal_s2s.pipelines import Captioner
from multimodal_s2s.preprocessing.audio import AudioFeatures
from multimodal_s2s.preprocessing.tokens import pad_last_axis, pad_token_ids

OPSET = 18
PATHS = ("pytorch", "onnx_fp32", "onnx_int8")


def caption_inputs(checkpoint, count: int):
    """Shapes test scenes prepared as the Captioner does -> (pixels, None, references per input)."""
    scenes = ShapeScenes(seed=SHAPES_SPLIT_SEEDS["test"], image_size=64)
    captioner = Captioner(checkpoint, "cpu")
    images = [scenes[i] for i in range(count)]
    pixels = torch.stack([captioner.prepare(scene.image) for scene in images])
    return pixels, None, [set(scene.captions) for scene in images]


def asr_inputs(checkpoint, count: int):
    """espeak sentences never trained on (another seed), as normalized log-mel -> (features, lengths, refs)."""
    import random

    texts = sentences(count, seed=12345)
    rng = random.Random(0)
    waves = [torch.from_numpy(synthesize(text, random_voice(rng))) for text in texts]
    padded, lengths = pad_last_axis(waves, 0.0)
    features, frames = AudioFeatures(model_from_checkpoint(checkpoint).encoder.info.n_mels).eval()(padded, lengths)
    return features, frames, [{text} for text in texts]


def translation_inputs(checkpoint, count: int):
    """Dates validation pairs -> (source ids, lengths, {ISO date})."""
    pairs = date_pairs(count, seed=1, split="val")
    ids = [checkpoint.header.source_tokenizer.encode(source, add_special=True) for source, _ in pairs]
    return pad_token_ids(ids), torch.tensor([len(i) for i in ids]), [{target} for _, target in pairs]


INPUTS = {"captioning": caption_inputs, "asr": asr_inputs, "translation": translation_inputs}


class Profiled:
    """Wraps an onnxruntime session, summing the seconds its ``run`` takes."""

    def __init__(self, session):
        self.session, self.seconds = session, 0.0

    def run(self, names, feeds):
        start = time.perf_counter()
        outputs = self.session.run(names, feeds)
        self.seconds += time.perf_counter() - start
        return outputs


def run_onnx(model: OnnxTextModel, inputs, lengths, options):
    model.encoder, model.decoder = Profiled(model.encoder), Profiled(model.decoder)
    start = time.perf_counter()
    results = search(model, model.encode(inputs, lengths), options)
    total = time.perf_counter() - start
    profile = {"encoder_s": model.encoder.seconds, "decoder_steps_s": model.decoder.seconds}
    model.encoder, model.decoder = model.encoder.session, model.decoder.session
    return total, [r.tokens for r in results], {**profile, "search_numpy_s": total - sum(profile.values())}


def run_pytorch(model, inputs, lengths, options):
    timed = {"encoder_s": 0.0, "decoder_steps_s": 0.0}
    encode, step = model.encode, model.step

    def timed_call(key, function):
        def call(*args, **kwargs):
            start = time.perf_counter()
            output = function(*args, **kwargs)
            timed[key] += time.perf_counter() - start
            return output
        return call

    model.encode, model.step = timed_call("encoder_s", encode), timed_call("decoder_steps_s", step)
    start = time.perf_counter()
    results = decode(model, inputs, options, lengths)
    total = time.perf_counter() - start
    del model.encode, model.step
    return total, [r.tokens for r in results], {**timed, "search_torch_s": total - sum(timed.values())}


def bench_task(task: str, path: str, args, folder: Path) -> dict:
    checkpoint = read_checkpoint(path)
    model = model_from_checkpoint(checkpoint)
    exports = {}
    for name, quantize in (("onnx_fp32", None), ("onnx_int8", "int8")):
        report = export_text(checkpoint, folder / f"{task}_{name}", OPSET, quantize)
        exports[name] = OnnxTextModel(report.folder, threads=args.threads)
    inputs, lengths, references = INPUTS[task](checkpoint, args.inputs)
    arrays = (inputs.numpy(), None if lengths is None else lengths.numpy())
    decode_text = checkpoint.header.tokenizer.decode
    task_results = {"checkpoint": path, "inputs": args.inputs}
    for search_name, beam in (("greedy", 1), ("beam4", 4)):
        options = DecodingOptions(beam_size=beam, max_length=checkpoint.header.decoding.max_length)
        times = {name: [] for name in PATHS}
        for round_number in range(args.repeats + 1):  # alternated: every round runs the three paths in turn
            with torch.no_grad():
                seconds, torch_tokens, torch_profile = run_pytorch(model, inputs, lengths, options)
            outputs = {"pytorch": (seconds, torch_tokens, torch_profile)}
            for name, exported in exports.items():
                outputs[name] = run_onnx(exported, *arrays, options)
            if round_number == 0:
                continue  # the warm-up round (allocations, first-run graph optimisation) is not timed
            for name, (seconds, *_) in outputs.items():
                times[name].append(seconds)
        outputs = {name: (tokens, profile) for name, (_, tokens, profile) in outputs.items()}
        task_results[search_name] = summary(times, outputs, decode_text, references)
    return task_results


def summary(times, outputs, decode_text, references) -> dict:
    """Median seconds, tokens/s, speed-up over PyTorch, agreement with PyTorch, exact match, last profile."""
    torch_tokens = outputs["pytorch"][0]
    median_torch = statistics.median(times["pytorch"])
    result = {}
    for name in PATHS:
        tokens, profile = outputs[name]
        median = statistics.median(times[name])
        correct = sum(normalize_caption(decode_text(t)) in {normalize_caption(r) for r in refs}
                      for t, refs in zip(tokens, references, strict=True))
        result[name] = {
            "seconds_per_batch": round(median, 4),
            "tokens_per_second": round(sum(len(t) + 1 for t in tokens) / median, 1),
            "speedup_over_pytorch": round(median_torch / median, 2),
            "same_tokens_as_pytorch": sum(a == b for a, b in zip(tokens, torch_tokens, strict=True)) / len(tokens),
            "exact_match": correct / len(tokens),
            "profile": {key: round(value, 4) for key, value in profile.items()},
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captioner", required=True)
    parser.add_argument("--asr", required=True)
    parser.add_argument("--translator", required=True)
    parser.add_argument("--out", default="benchmarks/results/onnx_decoding.json")
    parser.add_argument("--inputs", type=int, default=32, help="inputs decoded as one batch")
    parser.add_argument("--repeats", type=int, default=5,
                        help="alternated timed rounds after an untimed warm-up one (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    results = {"device": f"cpu ({platform.machine()}, {args.threads} thread(s))", "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as folder:
        for task, path in (("captioning", args.captioner), ("asr", args.asr), ("translation", args.translator)):
            results[task] = bench_task(task, path, args, Path(folder))
            print(json.dumps({task: results[task]}, indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
