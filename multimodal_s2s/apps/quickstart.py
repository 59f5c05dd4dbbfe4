"""The captioning quick start on the embedded scenes (no downloads): train, caption, then the demo.

    python -m multimodal_s2s.apps.quickstart [--checkpoint CKPT] [--images N] [-- FIT OVERRIDES...]

1. Trains ``tasks/captioning/shapes.yaml`` for its fixed number of steps (``mms2s fit``; under three
   minutes on 2 free CPU cores), unless ``--checkpoint`` names one already trained; extra arguments after
   ``--`` go to ``mms2s fit`` (e.g. ``-- --trainer.max_steps 200``). The console shows one progress line
   and the validation scores: Lightning's banners, tips and notes about its own internals are left out
   (the run's folder keeps the metrics, the resolved config and the checkpoints).
2. Renders a few scenes that training never saw into ``runs/captioning/quickstart/`` and captions them
   as ``mms2s caption`` does, each beside its reference captions.
3. Prints the command that opens the demo page for the checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import lightning as L

from multimodal_s2s.apps.common import fail
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.data.captioning import SHAPES_SPLIT_SEEDS
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.metrics.text import normalize_caption
from multimodal_s2s.pipelines import Captioner

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "tasks" / "captioning" / "shapes.yaml"
RUNS = Path("runs") / "captioning"
OUTPUT = RUNS / "quickstart"
DEFAULT_IMAGES = 5
#: Scene size the shapes recipe trains on.
SCENE_SIZE = 64
#: Seconds between two updates of the progress line on a terminal; elsewhere (a log) a line each tenth.
REFRESH_SECONDS, LOG_FRACTION = 0.5, 0.1
#: Overrides of ``mms2s fit`` for the quick start's console: its own progress line (``ProgressLine``) instead of
#: Lightning's.
CONSOLE_OVERRIDES = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class ProgressLine(L.Callback):
    """One console line for a training run: steps done of the total, the training loss, the time spent and
    the time left; then the validation scores each time they are computed. At the end ``best_checkpoint``
    is the run's best checkpoint (its ModelCheckpoint's), wherever the run's folder is."""

    def __init__(self):
        self.start, self.last_print, self.interactive = 0.0, 0.0, sys.stdout.isatty()
        self.best_checkpoint = ""

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.monotonic()
        self.total = int(trainer.estimated_stepping_batches)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step, now = trainer.global_step, time.monotonic()
        if self.interactive and now - self.last_print < REFRESH_SECONDS and step < self.total:
            return
        if not self.interactive and step % max(1, round(self.total * LOG_FRACTION)) and step < self.total:
            return
        self.last_print, elapsed = now, now - self.start
        left = elapsed / step * (self.total - step)
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        line = f"training: step {step}/{self.total} · loss {loss:.3f} · {clock(elapsed)} spent, {clock(left)} left"
        print(f"\r{line}\033[K" if self.interactive else line, end="" if self.interactive else "\n", flush=True)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        scores = {key.removeprefix("val/"): float(value) for key, value in trainer.callback_metrics.items()
                  if key.startswith("val/")}
        shown = " · ".join(f"{name} {value:.{3 if name == 'loss' else 1}f}" for name, value in scores.items())
        print(f"{chr(10) if self.interactive else ''}validation after step {trainer.global_step}: {shown}", flush=True)


def clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def quiet_lightning() -> None:
    """Lightning's info lines (banners, tips, 'Seed set') and its notes on deprecated internals off the console."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*treespec.*is deprecated")


def train(overrides: list[str]) -> Path:
    """Run the shapes recipe; returns the run's best checkpoint."""
    from multimodal_s2s.apps.training import run_lightning_cli

    if not RECIPE.is_file():
        raise FileNotFoundError(f"{RECIPE}: recipe not found (run the quick start from a source checkout)")
    quiet_lightning()
    progress = ProgressLine()
    argv = ["fit", "--config", str(RECIPE), *CONSOLE_OVERRIDES, *overrides]
    if run_lightning_cli(argv, trainer_defaults={"callbacks": [progress]}) != 0:
        raise SystemExit(1)  # run_lightning_cli has said why, in one line
    if not progress.best_checkpoint:
        raise FileNotFoundError(f"{RECIPE}: training wrote no best checkpoint (is checkpointing switched off?)")
    return Path(progress.best_checkpoint)


def write_scenes(count: int, folder: Path = OUTPUT) -> list[tuple[Path, list[str]]]:
    """``count`` test-split scenes as PNGs in ``folder``, with their reference captions."""
    folder.mkdir(parents=True, exist_ok=True)
    scenes = ShapeScenes(seed=SHAPES_SPLIT_SEEDS["test"], image_size=SCENE_SIZE)
    written = []
    for index in range(count):
        scene = scenes[index]
        path = folder / f"scene_{index}.png"
        scene.image.save(path)
        written.append((path, scene.captions))
    return written


def caption_scenes(checkpoint: Path, scenes: list[tuple[Path, list[str]]]) -> int:
    """Captions the scenes (as ``mms2s caption``), prints each beside its references -> how many are right."""
    generations = Captioner.from_checkpoint(checkpoint)([path for path, _ in scenes])
    right = 0
    for (path, references), generation in zip(scenes, generations, strict=True):
        correct = normalize_caption(generation.text) in {normalize_caption(r) for r in references}
        right += correct
        print(f"{path}\t{'right' if correct else 'wrong'}\t{generation.text}\n    references: {' | '.join(references)}")
    return right


def demo_command() -> str:
    """``mms2s`` as the user can type it: bare when it is on the PATH, else this environment's script."""
    script = Path(sys.executable).parent / "mms2s"
    if shutil.which("mms2s") or not script.exists():
        return "mms2s"
    return str(script.relative_to(Path.cwd()) if script.is_relative_to(Path.cwd()) else script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="skip training and use this captioning checkpoint")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="scenes to caption")
    parser.add_argument("overrides", nargs="*", help="after --: arguments for mms2s fit")
    args = parser.parse_args(argv)
    if not args.checkpoint:
        print(f"Training {RECIPE.relative_to(REPO_ROOT)} (image captioning) on generated scenes", flush=True)
    start = time.monotonic()
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args.overrides)
    if not args.checkpoint:
        print(f"trained in {clock(time.monotonic() - start)}; checkpoint: {checkpoint}")
    scenes = write_scenes(args.images)
    print(f"\nCaptions of {len(scenes)} scenes that training never saw (mms2s caption IMAGE --checkpoint CKPT):")
    try:
        right = caption_scenes(checkpoint, scenes)
    except CheckpointError as error:
        return fail(str(error))
    print(f"{right} of {len(scenes)} captions match a reference.")
    print(f"\nOpen the demo page:\n  {demo_command()} demo captioning --checkpoint {checkpoint}\n"
          "then browse to http://127.0.0.1:8000/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
