"""The captioning quick start on the embedded scenes (no downloads): train, caption, then the demo.

    python -m multimodal_s2s.apps.quickstart [--checkpoint CKPT] [--images N] [-- FIT OVERRIDES...]

1. Trains ``tasks/captioning/shapes.yaml`` (``mms2s fit``; minutes on 2 CPU cores), unless
   ``--checkpoint`` names one already trained; extra arguments after ``--`` go to ``mms2s fit``
   (e.g. ``-- --trainer.max_epochs 1``).
2. Renders a few scenes that training never saw into ``runs/captioning/quickstart/`` and captions
   them with ``mms2s caption``, next to the captions they were generated with.
3. Prints the command that opens the demo page for the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multimodal_s2s.apps import caption
from multimodal_s2s.data.captioning import SHAPES_SPLIT_SEEDS
from multimodal_s2s.data.shapes import ShapeScenes

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "tasks" / "captioning" / "shapes.yaml"
RUNS = Path("runs") / "captioning"
OUTPUT = RUNS / "quickstart"
DEFAULT_IMAGES = 5
#: Scene size the shapes recipe trains on.
SCENE_SIZE = 64


def train(overrides: list[str]) -> Path:
    """Run the shapes recipe; returns its best checkpoint (newest run)."""
    from multimodal_s2s.apps.training import run_lightning_cli

    if not RECIPE.is_file():
        raise FileNotFoundError(f"{RECIPE}: recipe not found (run the quick start from a source checkout)")
    run_lightning_cli(["fit", "--config", str(RECIPE), *overrides])
    checkpoints = sorted((RUNS / "shapes").glob("version_*/checkpoints/best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise FileNotFoundError(f"{RUNS / 'shapes'}: training wrote no best-*.ckpt checkpoint")
    return checkpoints[-1]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="skip training and use this captioning checkpoint")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="scenes to caption")
    parser.add_argument("overrides", nargs="*", help="after --: arguments for mms2s fit")
    args = parser.parse_args(argv)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args.overrides)
    print(f"\ncheckpoint: {checkpoint}\n\nreferences of the generated scenes:")
    scenes = write_scenes(args.images)
    for path, references in scenes:
        print(f"{path}\t{' | '.join(references)}")
    print("\nmms2s caption:", flush=True)
    command = argparse.ArgumentParser()
    caption.add_arguments(command)
    code = caption.run(command.parse_args([*(str(path) for path, _ in scenes), "--checkpoint", str(checkpoint)]))
    print(
        f"\nOpen the demo page:\n  mms2s demo captioning --checkpoint {checkpoint}\nthen browse to http://127.0.0.1:8000/"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
