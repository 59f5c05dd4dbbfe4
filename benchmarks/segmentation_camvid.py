"""CamVid benchmark: the suite's dense models beside segmentation_models_pytorch's Unet (resnet18), all random init.

Models: SegNet-Basic (``segnet_basic`` + ``segnet``), the skip decoder on resnet18 (``cnn`` + ``unet``,
as tasks/segmentation/camvid_unet.yaml), ViT-Tiny/8 + mask Transformer (``vit_tiny`` +
``mask_transformer``, as camvid_vit_mask.yaml), the same ViT + the skip decoder (which tells the
encoder's share from the decoder's) and smp's Unet-resnet18. All see the same data
(CamVid as in the SegNet paper: 367 train, 101 val images, 11 classes, void ignored), the same
augmentation, resolution, loss (``--loss``, median-frequency class weights), optimizer (AdamW,
warmup + cosine) and budget (optimizer steps at a batch size).

Two measurements, each for the ``--models`` given:

- quality: train under the budget, then val global accuracy, class-average accuracy and mIoU (at
  the training resolution; masks resized nearest) and the training wall time (data loading included);
- speed, side by side in one process, the models interleaved round by round (median of
  ``--speed-rounds``): one training step (forward, backward, AdamW) on a batch at the training
  resolution, and inference images/s at 360x480.

Ratios to smp's Unet (mIoU, class-average accuracy, train step time, inference speed) are written
with the figures. Results go into ``--out`` (JSON); an existing report with the same settings is
extended model by model, so that models can be trained in separate invocations (each under ~20 min
on a CPU); a report with other settings is refused.

    python benchmarks/segmentation_camvid.py                          # GPU: everything, 4000 steps at 360x480
    python benchmarks/segmentation_camvid.py --height 90 --width 120 --steps 600 --batch-size 4 \
        --models segnet_basic,smp_unet_resnet18 --measure quality    # CPU: part of the quality runs
    python benchmarks/segmentation_camvid.py --height 90 --width 120 --steps 600 --batch-size 4 --measure speed

Writes JSON (default benchmarks/results/segmentation_camvid.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
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
from multimodal_s2s.lit.optim import adamw_warmup_cosine
from multimodal_s2s.lit.segmentation import median_frequency_weights
from multimodal_s2s.losses import LossFunction, segmentation_loss
from multimodal_s2s.metrics.segmentation import SUMMARY_KEYS, SegmentationMetrics
from multimodal_s2s.outputs import atomic_write_text

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
CAMVID_VOID = 11
INFERENCE_SIZE = (360, 480)
UNET_STRIDE = 32  # smp's Unet needs sides divisible by its encoder's total stride
VIT_PATCH = 8  # divides 360 and 480; other training sizes are padded up to multiples of it
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 1e-4
REFERENCE = "smp_unet_resnet18"
#: What must match for results to share one report.
SETTINGS_KEYS = ("dataset", "device", "precision", "resolution", "budget", "training", "seed")
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


def build_models(num_classes: int, size: tuple[int, int]) -> dict[str, Callable[[], nn.Module]]:
    """Name -> factory of each compared model (randomly initialised); ``size`` (H, W) of training."""
    import segmentation_models_pytorch as smp

    vit_args = {"patch_size": VIT_PATCH, "img_size": [math.ceil(side / VIT_PATCH) * VIT_PATCH for side in size]}

    def create(encoder: str, decoder: str, encoder_args: dict | None = None, decoder_args: dict | None = None):
        return multimodal_s2s.create_model(encoder, decoder, encoder_args, decoder_args, num_classes=num_classes)

    return {
        "segnet_basic": lambda: create("segnet_basic", "segnet", decoder_args={"kernel_size": 7}),
        "unet_resnet18": lambda: create("cnn", "unet", encoder_args={"backbone": "resnet18"}),
        "vit_tiny_mask_transformer": lambda: PadToMultiple(create("vit_tiny", "mask_transformer", vit_args), VIT_PATCH),
        "vit_tiny_unet": lambda: PadToMultiple(create("vit_tiny", "unet", vit_args), VIT_PATCH),
        REFERENCE: lambda: PadToMultiple(smp.Unet("resnet18", encoder_weights=None, classes=num_classes), UNET_STRIDE),
    }


def make_optimizer(model: nn.Module, args: argparse.Namespace) -> tuple[torch.optim.Optimizer, Any]:
    """The suite's AdamW (no decay on biases and norms) with warmup + cosine over ``args.steps``."""
    warmup = max(1, int(WARMUP_FRACTION * args.steps))
    setup = adamw_warmup_cosine(model.parameters(), args.lr, WEIGHT_DECAY, warmup, args.steps)
    return setup["optimizer"], setup["lr_scheduler"]["scheduler"]


def train_step(model: nn.Module, optimizer, loss_fn: Callable, images: Tensor, masks: Tensor) -> Tensor:
    """One forward, backward and optimizer step; returns the loss."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.device.type == "cuda"):
        logits = model(images)  # (B, C, H, W)
    loss = loss_fn(logits.float(), masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train(model: nn.Module, data: SegmentationDataModule, loss_fn: Callable, args, device: torch.device) -> float:
    """``args.steps`` steps over the (repeated) training loader; returns the seconds spent."""
    optimizer, schedule = make_optimizer(model, args)
    model.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for batch in data.train_dataloader():
            loss = train_step(model, optimizer, loss_fn, batch["images"].to(device), batch["masks"].to(device))
            schedule.step()
            step += 1
            if step % args.log_every == 0:
                print(f"  step {step}/{args.steps} loss {loss.item():.3f}", flush=True)
            if step == args.steps:
                break
    _synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def evaluate(model: nn.Module, data: SegmentationDataModule, device: torch.device) -> dict[str, Any]:
    """Val global_acc, class_avg_acc, miou and per-class IoU."""
    model.eval()
    metrics = SegmentationMetrics(data.num_classes, CAMVID_VOID).to(device)
    for batch in data.val_dataloader():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch["images"].to(device))
        metrics.update(logits.float(), batch["masks"].to(device))
    scores = metrics.compute()
    result: dict[str, Any] = {key: round(float(scores[key]), 4) for key in SUMMARY_KEYS}
    result["iou_per_class"] = {
        name: None if math.isnan(value) else round(value, 4)
        for name, value in zip(data.class_names, scores["iou"].tolist(), strict=True)
    }
    return result


def measure_speeds(
    factories: dict[str, Callable[[], nn.Module]], loss_fn: Callable, args, device: torch.device, num_classes: int
) -> dict[str, dict[str, float]]:
    """Per model: median seconds of one training step at the training size, and inference images/s
    at 360x480; the models take turns round by round, so that load changes hit them alike."""
    models = {name: factory().to(device) for name, factory in factories.items()}
    optimizers = {name: make_optimizer(model, args)[0] for name, model in models.items()}
    images = torch.randn(args.batch_size, 3, args.height, args.width, device=device)
    masks = torch.randint(0, num_classes, (args.batch_size, args.height, args.width), device=device)
    large = torch.randn(args.inference_batch, 3, *INFERENCE_SIZE, device=device)
    step_seconds: dict[str, list[float]] = {name: [] for name in models}
    inference_seconds: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(args.speed_rounds + 1):  # round 0 warms up
        for name, model in models.items():
            model.train()
            start = _now(device)
            train_step(model, optimizers[name], loss_fn, images, masks)
            step_time = _now(device) - start
            model.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                start = _now(device)
                model(large)
                inference_time = _now(device) - start
            if round_index > 0:
                step_seconds[name].append(step_time)
                inference_seconds[name].append(inference_time)
        print(f"  speed round {round_index}/{args.speed_rounds} done", flush=True)
    return {
        name: {
            "train_step_seconds": round(statistics.median(step_seconds[name]), 4),
            "inference_images_per_s_360x480": round(args.inference_batch / statistics.median(seconds), 2),
        }
        for name, seconds in inference_seconds.items()
    }


def _now(device: torch.device) -> float:
    """perf_counter once the device has finished its queued work."""
    _synchronize(device)
    return time.perf_counter()


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
    parser.add_argument("--loss", default="cross_entropy", help="e.g. dice or cross_entropy+dice")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help=f"comma-separated: {', '.join(MODEL_NAMES)}")
    parser.add_argument("--measure", choices=("quality", "speed", "both"), default="both")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--inference-batch", type=int, default=8)
    parser.add_argument("--speed-rounds", type=int, default=5, help="timed rounds of the speed measurement")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/segmentation_camvid.json")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.models) - set(MODEL_NAMES))
    if unknown or not args.models:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODEL_NAMES)}")
    return args


MODEL_NAMES = ("segnet_basic", "unet_resnet18", "vit_tiny_mask_transformer", "vit_tiny_unet", REFERENCE)


def describe_run(args: argparse.Namespace, data: SegmentationDataModule, device: torch.device) -> dict[str, Any]:
    """The settings every result of one report shares: data, device, resolution, budget and training."""
    return {
        "dataset": "CamVid (SegNet split): 367 train / 101 val, 11 classes, void (11) ignored",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})",
        "precision": "bf16-mixed" if device.type == "cuda" else "fp32",
        "resolution": [args.height, args.width],
        "evaluation": "val at the training resolution (images bilinear, masks nearest)",
        "budget": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "epochs": round(args.steps * args.batch_size / len(data.datasets["train"]), 2),
        },
        "training": {
            "optimizer": "AdamW (no decay on biases and norms)",
            "lr": args.lr,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "warmup-cosine",
            "loss": f"{args.loss}, median-frequency class weights",
            "augmentation": "scale 0.75-1.5, crop, flip",
        },
        "seed": args.seed,
        "published": PUBLISHED,
    }


def conditions() -> dict[str, Any]:
    """What the machine was like when a measurement started."""
    load = round(os.getloadavg()[0], 2)
    return {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": load}


def load_report(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The report at ``path`` to extend (ValueError when its settings differ), or a new one."""
    if not path.is_file():
        return {**settings, "quality": {}, "speed": None, "ratios_to_smp": {}}
    report = json.loads(path.read_text())
    differing = [key for key in SETTINGS_KEYS if report.get(key) != settings[key]]
    if differing:
        raise ValueError(f"{path} holds results with other {', '.join(differing)}; pass another --out")
    return report


def ratios_to_reference(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per model: mIoU, class-average accuracy, train step time and inference speed over smp's Unet."""
    ratios: dict[str, dict[str, float]] = {}
    quality, speed = report["quality"], (report["speed"] or {}).get("models", {})
    for name in MODEL_NAMES:
        entry = {}
        if name in quality and REFERENCE in quality:
            for key in ("miou", "class_avg_acc"):
                entry[key] = round(quality[name]["val"][key] / quality[REFERENCE]["val"][key], 3)
        if name in speed and REFERENCE in speed:
            own, reference = speed[name], speed[REFERENCE]
            entry["train_step_time"] = round(own["train_step_seconds"] / reference["train_step_seconds"], 3)
            images_per_s = "inference_images_per_s_360x480"
            entry["inference_speed"] = round(own[images_per_s] / reference[images_per_s], 3)
        if entry:
            ratios[name] = entry
    return ratios


def write_atomically(path: Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def run_quality(factories, data, loss_fn, args, device, report, out: Path) -> None:
    """Train and evaluate each model, writing the report after each one."""
    for name, factory in factories.items():
        torch.manual_seed(args.seed)
        model = factory().to(device)
        parameters = sum(p.numel() for p in model.parameters())
        print(f"{name}: {parameters / 1e6:.2f} M parameters", flush=True)
        started = conditions()
        seconds = train(model, data, loss_fn, args, device)
        result = {"parameters": parameters, "train_seconds": round(seconds, 1), "conditions": started}
        report["quality"][name] = {**result, "val": evaluate(model, data, device)}
        print(f"{name}: {json.dumps(report['quality'][name])}", flush=True)
        report["ratios_to_smp"] = ratios_to_reference(report)
        write_atomically(out, report)


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
    )
    data.setup("fit")
    out = Path(args.out)
    try:
        report = load_report(out, describe_run(args, data, device))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    weights = torch.tensor(median_frequency_weights(*data.class_pixel_counts()), dtype=torch.float32, device=device)
    loss: LossFunction = segmentation_loss(args.loss)
    loss_fn = lambda logits, masks: loss(logits, masks, CAMVID_VOID, weights)  # noqa: E731
    all_factories = build_models(data.num_classes, (args.height, args.width))
    factories = {name: all_factories[name] for name in args.models}
    if args.measure in ("quality", "both"):
        run_quality(factories, data, loss_fn, args, device, report, out)
    if args.measure in ("speed", "both"):
        torch.manual_seed(args.seed)
        started = conditions()
        speeds = measure_speeds(factories, loss_fn, args, device, data.num_classes)
        report["speed"] = {"conditions": started, "inference_batch": args.inference_batch, "models": speeds}
        print(f"speed: {json.dumps(speeds)}", flush=True)
    report["ratios_to_smp"] = ratios_to_reference(report)
    write_atomically(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
