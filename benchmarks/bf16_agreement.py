"""bf16 against float32 decoding on one trained captioning checkpoint: how often bf16 autocast (as
``--trainer.precision bf16-mixed`` validates and predicts) gives the same tokens as float32.

Captions the first N scenes of the shapes validation split with the checkpoint's decoding settings, once
in float32 and once under ``torch.autocast(bfloat16)`` on ``--device`` (the CPU by default; the same
autocast as Lightning's bf16-mixed uses on a GPU), and writes JSON: the share of captions with identical
tokens, the share of token positions that agree (over the longer of each pair), and the mean score
difference.

    .venv/bin/python benchmarks/bf16_agreement.py --checkpoint CKPT [--scenes 300] [--device cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from multimodal_s2s.data.captioning import SHAPES_SPLIT_SEEDS
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.pipelines import Captioner


def token_agreement(first: list[int], second: list[int]) -> tuple[int, int]:
    """(positions where both have the same token, positions of the longer one)."""
    same = sum(a == b for a, b in zip(first, second, strict=False))
    return same, max(len(first), len(second), 1)


def compare(checkpoint: Path, scenes: int, device: str) -> dict:
    captioner = Captioner.from_checkpoint(checkpoint, device=device)
    generated = ShapeScenes(seed=SHAPES_SPLIT_SEEDS["val"], image_size=captioner.header.preprocessing.image_size[0])
    images = [generated[index].image for index in range(scenes)]
    full = captioner(images)
    with torch.autocast(device, dtype=torch.bfloat16):
        half = captioner(images)
    pairs = list(zip(full, half, strict=True))
    positions = [token_agreement(a.tokens, b.tokens) for a, b in pairs]
    return {
        "checkpoint": str(checkpoint),
        "scenes": scenes,
        "identical_captions": sum(a.tokens == b.tokens for a, b in pairs) / len(pairs),
        "token_agreement": sum(same for same, _ in positions) / sum(total for _, total in positions),
        "mean_abs_score_difference": sum(abs(a.score - b.score) for a, b in pairs) / len(pairs),
        "differing_examples": [{"scene": i, "float32": a.text, "bf16": b.text}
                               for i, (a, b) in enumerate(pairs) if a.tokens != b.tokens][:10],
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a captioning checkpoint (shapes recipe)")
    parser.add_argument("--scenes", type=int, default=300, help="validation scenes to caption")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bf16_agreement.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    result = compare(args.checkpoint, args.scenes, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "differing_examples"}, indent=2))


if __name__ == "__main__":
    main()
