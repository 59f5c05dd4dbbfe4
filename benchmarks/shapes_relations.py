"""Shapes captioning diagnostic: how often a checkpoint's captions of the val scenes are exact, and how
often it gets the spatial relation of two-object scenes right, horizontal ("left of"/"right of") and
vertical ("above"/"below") apart; written as JSON.

    python benchmarks/shapes_relations.py CKPT [--scenes 300] [--out benchmarks/results/shapes_relations.json]

Objects are told apart by their colour (the two objects of a scene never share one): a caption's relation
is right when (first colour, relation, second colour) is that of one of the scene's references, whatever
it says of sizes and kinds. The scenes are the val split of ``tasks/captioning/shapes.yaml`` (seed 1).
``relation_nll`` is free of beam search's choices: the mean -log p(relation word | image, the reference up
to it) over both references of every two-object scene; ln 4 (``relation_nll_chance``) when the model
knows that a relation comes but not which. ``relation_nll_without_positions`` is the same with the encoder's
2-D positions zeroed (``position_scale`` 0): equal to ``relation_nll`` when the model does not use them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import torch

from multimodal_s2s.data.captioning import SHAPES_SPLIT_SEEDS
from multimodal_s2s.data.shapes import COLOURS, Scene, ShapeScenes
from multimodal_s2s.metrics.text import normalize_caption
from multimodal_s2s.outputs import atomic_write_text
from multimodal_s2s.pipelines import Captioner
from multimodal_s2s.types import BOS_ID

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "shapes_relations.json"
RELATION_AXIS = {"left of": "horizontal", "right of": "horizontal", "above": "vertical", "below": "vertical"}
RELATION_PATTERN = re.compile(
    rf"\b({'|'.join(COLOURS)})\b.*?\b({'|'.join(RELATION_AXIS)})\b.*?\b({'|'.join(COLOURS)})\b"
)


def relation_of(caption: str) -> tuple[str, str, str] | None:
    """"a small red circle left of a large blue square" -> ("red", "left of", "blue"); None without one."""
    match = RELATION_PATTERN.search(normalize_caption(caption))
    return (match.group(1), match.group(2), match.group(3)) if match else None


def score(captions: list[str], references: list[list[str]]) -> dict:
    """Exact share over all scenes; per axis of the references' relation, the share with the relation
    right and the share whose relation lies on the right axis."""
    counts: Counter = Counter()
    for caption, refs in zip(captions, references, strict=True):
        counts["exact"] += normalize_caption(caption) in {normalize_caption(r) for r in refs}
        truth = [relation_of(r) for r in refs]
        if truth[0] is None:
            continue
        axis, said = RELATION_AXIS[truth[0][1]], relation_of(caption)
        counts[f"{axis}_scenes"] += 1
        counts[f"{axis}_right"] += said in truth
        counts[f"{axis}_axis_right"] += said is not None and RELATION_AXIS[said[1]] == axis
    report = {"scenes": len(captions), "exact_share": round(counts["exact"] / len(captions), 3)}
    for axis in ("horizontal", "vertical"):
        scenes = counts[f"{axis}_scenes"]
        report[axis] = {
            "scenes": scenes,
            "relation_accuracy": round(counts[f"{axis}_right"] / max(scenes, 1), 3),
            "axis_accuracy": round(counts[f"{axis}_axis_right"] / max(scenes, 1), 3),
        }
    return report


@torch.no_grad()
def relation_nll(captioner: Captioner, scenes: list[Scene]) -> float:
    """Teacher-forced mean -log p(relation word | image, "a SIZE COLOUR KIND") over both references of
    every two-object scene."""
    tokenizer, losses = captioner.header.tokenizer, []
    for scene in scenes:
        pixels = captioner.prepare(scene.image)[None].to(captioner.device)  # (1, 3, H, W)
        for reference in scene.captions if len(scene.objects) == 2 else []:
            words = reference.split()  # a SIZE COLOUR KIND RELATION ...
            prefix = torch.tensor([[BOS_ID, *tokenizer.encode(" ".join(words[:4]))]], device=captioner.device)
            log_probs = captioner.model(pixels, prefix)[0, -1].log_softmax(-1)  # (V,)
            losses.append(-float(log_probs[tokenizer.encode(words[4])[0]]))
    return sum(losses) / max(len(losses), 1)


def relation_nll_without_positions(captioner: Captioner, scenes: list[Scene]) -> float:
    """``relation_nll`` with the CNN encoder's 2-D positions multiplied by 0."""
    encoder = captioner.model.encoder
    scale, encoder.position_scale = encoder.position_scale, 0.0
    try:
        return relation_nll(captioner, scenes)
    finally:
        encoder.position_scale = scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of tasks/captioning/shapes.yaml")
    parser.add_argument("--scenes", type=int, default=300, help="val scenes to caption")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint}: checkpoint not found", file=sys.stderr)
        return 2
    scenes = [ShapeScenes(seed=SHAPES_SPLIT_SEEDS["val"])[i] for i in range(args.scenes)]
    captioner = Captioner.from_checkpoint(args.checkpoint)
    captions = [caption.text for caption in captioner([scene.image for scene in scenes])]
    report = {
        "benchmark": "shapes_relations",
        "checkpoint": str(args.checkpoint),
        **score(captions, [scene.captions for scene in scenes]),
        "relation_nll": round(relation_nll(captioner, scenes), 3),
        "relation_nll_without_positions": round(relation_nll_without_positions(captioner, scenes), 3),
        "relation_nll_chance": round(math.log(4), 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
