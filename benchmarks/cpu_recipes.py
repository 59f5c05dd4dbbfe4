"""The CPU recipes under their wall-clock budgets: train from nothing, score through the suite's CLI, write JSON.

    .venv/bin/python benchmarks/cpu_recipes.py RECIPE [--minutes M] [--out FILE] [-- FIT OVERRIDES...]

RECIPE is one of ``RECIPES``: ``multi30k`` (tasks/translation/multi30k_en_de_cpu.yaml, sacreBLEU on
test_2016_flickr through ``mms2s test``), ``camvid`` (tasks/segmentation/camvid_unet_cpu.yaml, val mIoU with
the masks at 360x480 through ``mms2s validate``) and ``fsdd`` (tasks/asr/fsdd.yaml, digit accuracy on recordings 5-9
through ``mms2s transcribe``, the default path with the VAD) and ``librispeech``
(tasks/asr/librispeech_mini_cpu.yaml, WER on the utterances of the 4 speakers it holds back, through
``mms2s transcribe``).
``--minutes`` (default: the recipe's own ``trainer.max_time``) caps the fit; the checkpoint scored is the
run's ``averaged.ckpt`` when the recipe averages, else its last: never one chosen by its score on the split
it is scored on (the FSDD and CamVid recipes validate on the split the issue scores). The report holds the
budget, the fit's wall time and steps, the learning curve the recipe's ``LearningCurve`` wrote (metric
against wall time and step; its PNG sits beside it in the run folder), the score, the target and the
machine. Run it alone on the machine: two jobs on two cores make each several times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from multimodal_s2s.apps.cli import main as mms2s
from multimodal_s2s.apps.training import max_time, suite_cli
from multimodal_s2s.data.asr import read_librispeech
from multimodal_s2s.lit.runs import run_versions
from multimodal_s2s.metrics.text import ErrorRates, normalize_transcript
from multimodal_s2s.outputs import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results"
RUNS = REPO_ROOT / "runs" / "benchmarks"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FSDD_HELD_OUT = range(5, 10)


@dataclass(frozen=True)
class Recipe:
    """A CPU recipe, how its score is measured (checkpoint, run folder -> score), and the figure it must reach."""

    path: Path
    metric: str
    target: str
    score: Callable[[Path, Path], float]


def score_multi30k(checkpoint: Path, run_dir: Path) -> float:
    """sacreBLEU (13a, detokenized, cased) on test_2016_flickr, through ``mms2s test``."""
    cli = suite_cli(["test", "--config", str(RECIPES["multi30k"].path), "--ckpt_path", str(checkpoint),
                     "--data.init_args.test_split", "test_2016_flickr", "--trainer.default_root_dir", str(run_dir)])
    return float(cli.trainer.callback_metrics["test/bleu"])


def score_fsdd(checkpoint: Path, run_dir: Path) -> float:
    """Digit accuracy (%) on recordings 5-9 of every speaker and digit, through ``mms2s transcribe``."""
    recordings = sorted(p for p in (DATA / "fsdd" / "recordings").glob("*.wav")
                        if int(p.stem.rsplit("_", 1)[1]) in FSDD_HELD_OUT)
    out = run_dir / "transcripts"
    assert mms2s(["transcribe", "--checkpoint", str(checkpoint), *map(str, recordings), "--output-dir", str(out),
                  "--overwrite"]) == 0
    right = sum(normalize_transcript((out / f"{p.stem}.txt").read_text()) == DIGITS[int(p.stem[0])] for p in recordings)
    return 100 * right / len(recordings)


def score_librispeech(checkpoint: Path, run_dir: Path) -> float:
    """WER (%) on the recipe's held-back speakers' utterances, through ``mms2s transcribe`` (the default path)."""
    recipe = yaml.safe_load(RECIPES["librispeech"].path.read_text())
    speakers = set(recipe["data"]["init_args"]["val_speakers"])
    utterances = read_librispeech(DATA / "librispeech-mini", speakers=speakers)
    out = run_dir / "transcripts"
    assert mms2s(["transcribe", "--checkpoint", str(checkpoint), *(str(u.audio_path) for u in utterances),
                  "--output-dir", str(out), "--overwrite"]) == 0
    rates = ErrorRates()
    for utterance in utterances:
        rates.update([(out / f"{utterance.audio_path.stem}.txt").read_text()], [[utterance.text]])
    return rates.compute()["wer"]


def score_camvid(checkpoint: Path, run_dir: Path) -> float:
    """mIoU (%) of the 11 classes on the 101 val images at their own 360x480, through ``mms2s validate``."""
    cli = suite_cli(["validate", "--config", str(RECIPES["camvid"].path), "--ckpt_path", str(checkpoint),
                     "--trainer.default_root_dir", str(run_dir)])
    return 100 * float(cli.trainer.callback_metrics["val/miou"])


TASKS = REPO_ROOT / "tasks"
RECIPES = {
    "multi30k": Recipe(TASKS / "translation" / "multi30k_en_de_cpu.yaml", "test_2016 BLEU", ">= 38", score_multi30k),
    "camvid": Recipe(TASKS / "segmentation" / "camvid_unet_cpu.yaml", "val mIoU % at 360x480", ">= 46.3",
                     score_camvid),
    "fsdd": Recipe(TASKS / "asr" / "fsdd.yaml", "digit accuracy % (recordings 5-9)", ">= 99.5", score_fsdd),
    "librispeech": Recipe(TASKS / "asr" / "librispeech_mini_cpu.yaml", "WER % on the 4 held-back speakers", "<= 40",
                          score_librispeech),
}


def fit(recipe: Recipe, run_dir: Path, minutes: float | None, overrides: list[str]) -> dict[str, Any]:
    """Train the recipe into ``run_dir``: its wall time, steps, curve and the checkpoint to score."""
    budget = [] if minutes is None else ["--trainer.max_time", max_time(minutes)]
    start = time.perf_counter()
    cli = suite_cli(["fit", "--config", str(recipe.path), "--trainer.default_root_dir", str(run_dir), *budget,
                     *overrides])
    seconds = time.perf_counter() - start
    (_, version), *_ = run_versions(run_dir)
    averaged = version / "checkpoints" / "averaged.ckpt"
    curve = version / "curve.json"
    return {
        "fit_seconds": round(seconds),
        "steps": cli.trainer.global_step,
        "torch_threads": torch.get_num_threads(),  # as the fit set them (scoring may set others)
        "checkpoint": averaged if averaged.is_file() else version / "checkpoints" / "last.ckpt",
        "curve": json.loads(curve.read_text())["points"] if curve.is_file() else None,
        "curve_png": str(version / "curve.png") if curve.is_file() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--minutes", type=float, help="wall-clock cap of the fit (default: the recipe's)")
    parser.add_argument("--out", type=Path, help="the JSON report (default benchmarks/results/cpu_<recipe>.json)")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, overrides = parser.parse_args(argv[:split]), argv[split + 1 :]  # after --: options for mms2s fit
    recipe = RECIPES[args.recipe]
    RUNS.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"cpu_{args.recipe}_", dir=RUNS))
    trained = fit(recipe, run_dir, args.minutes, overrides)
    score = recipe.score(trained["checkpoint"], run_dir)
    report = {
        "recipe": str(recipe.path.relative_to(REPO_ROOT)), "budget_minutes": args.minutes, "overrides": overrides,
        **{key: str(value) if isinstance(value, Path) else value for key, value in trained.items()},
        "metric": recipe.metric, "score": round(score, 2), "target": recipe.target,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "run_dir": str(run_dir),
    }
    out = args.out or RESULTS / f"cpu_{args.recipe}.json"
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    print(f"{args.recipe}: {recipe.metric} {score:.2f} (target {recipe.target}) after {trained['steps']} steps "
          f"in {trained['fit_seconds']} s; report {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
