"""Flickr8k captioning benchmark: train a Flickr8k recipe under a time budget, then score the official
dev split (1,000 images x 5 references): BLEU-1..4 and CIDEr-D, written as JSON with the budget and device.

    python benchmarks/captioning_flickr8k.py --minutes 10 --epochs 2 [--recipe tasks/captioning/flickr8k.yaml]
        [--root ../shared/data/flickr8k] [--out benchmarks/results/captioning_flickr8k.json] [-- FIT OVERRIDES...]

Training stops at the end of ``--epochs`` epochs or when ``--minutes`` run out, whichever is first
(the learning rate is scheduled over ``--epochs``, so pick epochs that fit the budget); validation
during training is off, and the dev split is scored once at the end with the recipe's beam search.
Overrides after ``--`` go to the recipe as on ``mms2s fit`` (``--data.image_size [128,128]``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from multimodal_s2s.apps.training import SuiteCLI, max_time, suite_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "tasks" / "captioning" / "flickr8k.yaml"
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "flickr8k"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "captioning_flickr8k.json"
METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "cider")
#: Published figures on the same dev/test protocol, for context (see ../shared/data/README.md).
REFERENCE = {"Show-Attend-Tell, soft attention, ImageNet-pretrained VGG (Xu et al. 2015)": {
    "bleu1": 67.0, "bleu2": 44.8, "bleu3": 29.9, "bleu4": 19.5,
}}


def device_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def build(args: argparse.Namespace) -> SuiteCLI:
    """The recipe's model, data and trainer (not run yet), with the budget applied."""
    cli_args = [
        "--config", str(args.recipe), "--data.root", str(args.root),
        "--trainer.max_epochs", str(args.epochs), "--trainer.max_time", max_time(args.minutes),
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        *args.overrides,
    ]
    return suite_cli(cli_args, run=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="training time budget in minutes")
    parser.add_argument("--epochs", type=int, required=True, help="epochs the learning-rate schedule spans")
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the Flickr8k folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    parser.add_argument("overrides", nargs="*", help="after --: recipe overrides, as for mms2s fit")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root}: Flickr8k folder not found", file=sys.stderr)
        return 2
    cli = build(args)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    train_seconds = time.perf_counter() - started
    cli.trainer.limit_val_batches = 1.0
    started = time.perf_counter()
    scores = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]
    report = {
        "benchmark": "captioning_flickr8k",
        "recipe": str(args.recipe),
        "overrides": args.overrides,
        "budget": {"minutes": args.minutes, "epochs": args.epochs},
        "train_seconds": round(train_seconds, 1),
        "steps": cli.trainer.global_step,
        "epochs_completed": cli.trainer.current_epoch,
        "eval_seconds": round(time.perf_counter() - started, 1),
        "device": device_description(),
        "precision": str(cli.trainer.precision),
        "dev_images": len(cli.datamodule.datasets["val"]),
        "dev": {key: round(float(scores[f"val/{key}"]), 2) for key in METRIC_KEYS},
        "published_reference": REFERENCE,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
