"""CamVid benchmark: SegNet-Basic (this suite) beside segmentation_models_pytorch's Unet (resnet18, random init).

Both models see the same data (CamVid as in the SegNet paper: 367 train, 101 val images, 11
classes, void ignored), the same augmentation, resolution, loss (cross-entropy with median-frequency
class balancing), optimizer (AdamW, warmup + cosine) and budget (optimizer steps at a batch size),
in one run. It reports val global accuracy, class-average accuracy and mIoU (at the training
resolution; masks resized nearest), training time, and inference images/s at 360x480.

    python benchmarks/segmentation_camvid.py                          # GPU: full budget at 360x480
    python benchmarks/segmentation_camvid.py --height 90 --width 120 --steps 60 --batch-size 4   # CPU smoke

Writes JSON (default benchmarks/results/segmentation_camvid.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import multimodal_s2s
from multimodal_s2s.data.segmentation import SegmentationDataModule
from multimodal_s2s.lit.optim import warmup_cosine
from multimodal_s2s.lit.segmentation import median_frequency_weights
from multimodal_s2s.metrics.segmentation import SUMMARY_KEYS, SegmentationMetrics

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
CAMVID_VOID = 11
INFERENCE_SIZE = (360, 480)
UNET_STRIDE = 32  # smp's Unet needs sides divisible by its encoder's total stride
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 1e-4
INFERENCE_WARMUP_ITERATIONS = 1
#: Published CamVid figures (11 classes, 360x480) from the SegNet paper, for context.
PUBLISHED = {"segnet_basic": {"global_acc": 0.828, "class_avg_acc": 0.623, "miou": 0.463}}


class PadToMultiple(nn.Module):
    """Zero-pads images (B, 3, H, W) up to multiples of ``multiple`` for ``model``, crops the logits back."""

    def __init__(self, model: nn.Module, multiple: int):
        super().__init__()
        self.model, self.multiple = model, multiple

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        logits = self.model(F.pad(images, (0, pad_w, 0, pad_h)))  # (B, C, H + pad_h, W + pad_w)
        return logits[..., :height, :width]


def build_models(num_classes: int) -> dict[str, Callable[[], nn.Module]]:
    """Name -> factory of each compared model (both randomly initialised)."""
    import segmentation_models_pytorch as smp

    return {
        "segnet_basic": lambda: multimodal_s2s.create_model(
            "segnet_basic", "segnet", decoder_args={"kernel_size": 7}, num_classes=num_classes
        ),
        "smp_unet_resnet18": lambda: PadToMultiple(
            smp.Unet("resnet18", encoder_weights=None, classes=num_classes), UNET_STRIDE
        ),
    }


def train(model: nn.Module, data: SegmentationDataModule, weights: Tensor, args, device: torch.device) -> float:
    """``args.steps`` AdamW steps over the (repeated) training loader; returns the seconds spent."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(max(1, int(WARMUP_FRACTION * args.steps)), args.steps)
    )
    model.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for batch in data.train_dataloader():
            images, masks = batch["images"].to(device), batch["masks"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(images)  # (B, C, H, W)
            loss = F.cross_entropy(logits.float(), masks, weight=weights, ignore_index=CAMVID_VOID)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % args.log_every == 0:
                print(f"  step {step}/{args.steps} loss {loss.item():.3f}", flush=True)
            if step == args.steps:
                break
    _synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def evaluate(model: nn.Module, data: SegmentationDataModule, device: torch.device) -> dict[str, float]:
    """Val global_acc, class_avg_acc, miou and per-class IoU."""
    model.eval()
    metrics = SegmentationMetrics(data.num_classes, CAMVID_VOID).to(device)
    for batch in data.val_dataloader():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch["images"].to(device))
        metrics.update(logits.float(), batch["masks"].to(device))
    scores = metrics.compute()
    result = {key: round(float(scores[key]), 4) for key in SUMMARY_KEYS}
    result["iou_per_class"] = {
        name: None if math.isnan(value) else round(value, 4)
        for name, value in zip(data.class_names, scores["iou"].tolist(), strict=True)
    }
    return result


@torch.no_grad()
def inference_speed(model: nn.Module, device: torch.device, batch_size: int, iterations: int) -> float:
    """Images per second at 360x480 (eval mode; bf16 autocast on GPU)."""
    model.eval()
    images = torch.randn(batch_size, 3, *INFERENCE_SIZE, device=device)
    for index in range(INFERENCE_WARMUP_ITERATIONS + iterations):
        if index == INFERENCE_WARMUP_ITERATIONS:
            _synchronize(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(images)
    _synchronize(device)
    return batch_size * iterations / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="CamVid folder (train.txt, val.txt, classes.txt)")
    parser.add_argument("--height", type=int, default=INFERENCE_SIZE[0], help="training and evaluation height")
    parser.add_argument("--width", type=int, default=INFERENCE_SIZE[1], help="training and evaluation width")
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps per model (the budget)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--inference-batch", type=int, default=8)
    parser.add_argument("--inference-iterations", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/segmentation_camvid.json")
    return parser.parse_args(argv)


def describe_run(args: argparse.Namespace, data: SegmentationDataModule, device: torch.device) -> dict[str, Any]:
    """The report's header: data, device, resolution, budget and training settings shared by both models."""
    return {
        "dataset": "CamVid (SegNet split): 367 train / 101 val, 11 classes, void (11) ignored",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})",
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "precision": "bf16-mixed" if device.type == "cuda" else "fp32",
        "resolution": [args.height, args.width],
        "evaluation": "val at the training resolution (images bilinear, masks nearest)",
        "budget": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "epochs": round(args.steps * args.batch_size / len(data.datasets["train"]), 2),
        },
        "training": {
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "warmup-cosine",
            "loss": "cross-entropy, median-frequency class weights",
            "augmentation": "scale 0.75-1.5, crop, flip",
        },
        "published": PUBLISHED,
    }


def benchmark_model(
    model: nn.Module, data: SegmentationDataModule, weights: Tensor, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """Train under the budget, evaluate on val, time inference at 360x480."""
    seconds = train(model, data, weights, args, device)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "val": evaluate(model, data, device),
        "inference_images_per_s_360x480": round(
            inference_speed(model, device, args.inference_batch, args.inference_iterations), 3
        ),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.root, "train.txt").is_file():
        print(f"error: {args.root}: not a CamVid folder (no train.txt); pass --root", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = SegmentationDataModule(
        format="list", root=args.root, train_split="train.txt", val_split="val.txt", ignore_index=CAMVID_VOID,
        image_size=(args.height, args.width), scale_range=(0.75, 1.5), batch_size=args.batch_size,
        num_workers=args.num_workers,
    )  # fmt: skip
    data.setup("fit")
    weights = torch.tensor(median_frequency_weights(*data.class_pixel_counts()), dtype=torch.float32, device=device)
    report = {**describe_run(args, data, device), "models": {}}
    for name, factory in build_models(data.num_classes).items():
        torch.manual_seed(args.seed)
        model = factory().to(device)
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
        report["models"][name] = benchmark_model(model, data, weights, args, device)
        print(f"{name}: {json.dumps(report['models'][name])}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
