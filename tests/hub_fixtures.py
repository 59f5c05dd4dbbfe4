"""Tiny checkpoints of the four tasks for Hub folders, the inputs they are run on, and their outputs as JSON.

The translation model has a BPE target tokenizer and a SentencePiece source tokenizer (the two kinds a Hub
folder keeps as files of their own); the ASR model has a CTC head (weights outside ``model.*``). ``outputs``
is what a test compares between a pipeline built from the checkpoint and one built from its Hub folder, in
this process or in another (``LOAD_AND_PRINT``, run offline with every socket failing).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece
import soundfile
import torch
from asr_fixtures import tone_utterance
from checkpoint_helpers import random_checkpoint, segmentation_header, text_header
from marian_fixtures import sentences, train_spm
from PIL import Image

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointHeader, Task
from multimodal_s2s.pipelines import Pipeline
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.tokenizers import BPETokenizer, SentencePieceTokenizer
from multimodal_s2s.types import SPECIAL_TOKENS

LINES = ["the cat sees the river", "", "a dog likes two apples today"]
#: Run in a subprocess after ``pretrained_fixtures.BLOCK_NETWORK``: nothing may be unpickled either.
#: argv: a JSON object {task: model (folder or repository id)} and one of the inputs; prints one JSON line per task.
LOAD_AND_PRINT = """
import json, pickle, sys
import torch
def _no_pickle(*args, **kwargs):
    raise AssertionError("a Hub folder was unpickled")
pickle.load = pickle.loads = torch.load = _no_pickle
import multimodal_s2s as mms
from hub_fixtures import outputs
models, inputs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for task, model in models.items():
    pipeline = mms.load_pipeline(model, device="cpu")
    print(json.dumps({"task": task, "outputs": outputs(pipeline, inputs)}))
"""


def translation_header() -> CheckpointHeader:
    """A translation header: SentencePiece source pieces, BPE target pieces, a small LSTM -> Transformer model."""
    source_model = train_spm(sentences(200), 40)
    source = SentencePieceTokenizer([*SPECIAL_TOKENS, *_pieces(source_model)], source_model)
    target = BPETokenizer.train(sentences(200, seed=3), vocab_size=80, full_alphabet=False)
    header = text_header(Task.TRANSLATION)
    model = header.model
    encoder_args = {**model.encoder_args, "vocab_size": source.vocab_size}
    model = replace(model, encoder_args=encoder_args, vocab_size=target.vocab_size)
    return replace(header, model=model, tokenizer=target, source_tokenizer=source)


def _pieces(model: bytes) -> list[str]:
    """The pieces of a SentencePiece model, its control and unknown pieces left out."""
    processor = sentencepiece.SentencePieceProcessor()
    processor.LoadFromSerializedProto(model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())
            if not (processor.is_control(i) or processor.is_unknown(i))]


def write_checkpoints(folder: Path) -> dict[Task, Path]:
    """A random-weights checkpoint of each task in ``folder`` (the ASR one with a CTC head)."""
    headers = {task: text_header(task) for task in (Task.CAPTIONING, Task.ASR)}
    headers[Task.SEGMENTATION] = segmentation_header()
    headers[Task.TRANSLATION] = translation_header()
    paths = {task: random_checkpoint(folder / f"{task.value}.ckpt", header) for task, header in headers.items()}
    raw = torch.load(paths[Task.ASR], weights_only=True)
    vocab, width = headers[Task.ASR].model.vocab_size, headers[Task.ASR].model.decoder_args["d_model"]
    raw["state_dict"] |= {"ctc_head.project.weight": torch.randn(vocab, width),
                          "ctc_head.project.bias": torch.zeros(vocab)}
    raw[CHECKPOINT_KEY]["ctc_weight"] = 0.3
    torch.save(raw, paths[Task.ASR])
    return paths


def write_inputs(folder: Path) -> dict[str, Any]:
    """An image, a recording of tones and some lines, as a JSON-able dict of paths and strings."""
    image, audio = folder / "photo.png", folder / "tones.wav"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(image)
    soundfile.write(audio, tone_utterance(["up", "left"]), SAMPLE_RATE)
    return {"image": str(image), "audio": str(audio), "lines": LINES}


def outputs(pipeline: Pipeline, inputs: dict[str, Any]) -> Any:
    """What ``pipeline`` makes of ``inputs`` (beam search of 2 for text), as JSON data."""
    task = pipeline.task
    if task == Task.CAPTIONING:
        return [_text(caption) for caption in pipeline([inputs["image"]], beam_size=2, n_best=2)]
    if task == Task.ASR:  # tones: the energy splitter, no checks (random weights fail them)
        options = replace(PLAIN_DECODING, windows="energy", beam_size=2)
        transcript = pipeline([inputs["audio"]], options=options)[0]
        return [[segment.start, segment.end, segment.text] for segment in transcript.segments]
    if task == Task.SEGMENTATION:
        return pipeline([inputs["image"]])[0].labels.tolist()
    return [_text(translation) for translation in pipeline(inputs["lines"], beam_size=2, n_best=2)]


def _text(generation: Any) -> dict[str, Any]:
    return {"text": generation.text, "tokens": generation.tokens, "score": round(generation.score, 5),
            "n_best": [[hypothesis.text, round(hypothesis.score, 5)] for hypothesis in generation.n_best]}

