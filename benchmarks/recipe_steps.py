"""Training speed of each embedded recipe: steps/s over a fixed number of steps, one recipe at a time.

Each recipe runs in its own process (``mms2s fit`` with ``--trainer.max_steps``, no validation, no
logger, no checkpoint), so that thread settings start fresh. The clock runs from the end of step
``--warmup`` to the end of the last step: data loading is inside it, set-up (data generation, the
espeak corpus, model building) is not. Reported: steps/s over that span, steps/s from the median step
(robust to bursts of load from other jobs), this process's CPU seconds a step (data-loader workers not
included) and the load average before and after. ``--threads N`` sets OMP_NUM_THREADS=N for the run (unset:
the suite's default), ``--workers N`` the data modules' ``num_workers`` (unset: the recipe's or the
suite's default); ``--accelerator`` and ``--precision`` go to the trainer (on a GPU the clock waits for
the device at the end of each step).

    .venv/bin/python benchmarks/recipe_steps.py [--steps 60] [--warmup 10] [--threads N] [--workers N]
        [--accelerator cpu|gpu] [--precision 32|bf16-mixed]
        [--recipes tasks/captioning/shapes.yaml ...] [--out benchmarks/results/recipe_steps.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = [
    "tasks/captioning/shapes.yaml",
    "tasks/asr/espeak.yaml",
    "tasks/segmentation/shapes.yaml",
    "tasks/translation/dates.yaml",
]


class StepClock(L.Callback):
    """The end time of every training step after ``warmup`` (and of step ``warmup``), and the process's CPU time."""

    def __init__(self, warmup: int):
        self.warmup, self.times, self.cpu = warmup, [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.cpu.append(time.process_time())


def run_one(recipe: str, steps: int, warmup: int, workers: int | None, trainer_args: list[str]) -> dict:
    """Train ``recipe`` for ``steps`` steps in this process -> steps/s after the warm-up."""
    from multimodal_s2s.apps.training import suite_cli

    clock = StepClock(warmup)
    args = ["fit", "--config", recipe, "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]",
            "--trainer.enable_progress_bar", "false", "--trainer.max_time", "null"]
    if workers is not None:
        args += ["--data.num_workers", str(workers)]
    args += trainer_args
    load_before = os.getloadavg()[0]
    suite_cli(args, trainer_defaults={"callbacks": [clock]})
    seconds, durations = clock.times[-1] - clock.times[0], [b - a for a, b in itertools.pairwise(clock.times)]
    return {
        "recipe": recipe,
        "timed_steps": len(durations),
        "seconds": seconds,
        "steps_per_s": len(durations) / seconds,
        "steps_per_s_median": 1 / statistics.median(durations),  # robust to bursts of load from other jobs
        "cpu_seconds_per_step": (clock.cpu[-1] - clock.cpu[0]) / len(durations),  # this process, all its threads
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "trainer_args": trainer_args,
    }


def measure(recipe: str, args: argparse.Namespace) -> dict:
    """Runs ``recipe`` in a child process with the requested threads and workers."""
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    command = [sys.executable, __file__, "--child", recipe, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    for option in ("accelerator", "precision"):
        if getattr(args, option) is not None:
            command += [f"--{option}", getattr(args, option)]
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{recipe}: training failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(omp_num_threads=args.threads, num_workers=args.workers)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the runs (default: the suite's choice)")
    parser.add_argument("--workers", type=int, help="data.num_workers (default: the recipe's or the suite's)")
    parser.add_argument("--accelerator", help="trainer.accelerator (default: the recipe's)")
    parser.add_argument("--precision", help="trainer.precision (default: the recipe's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "recipe_steps.json")
    args = parser.parse_args()
    if args.child:
        trainer_args = [f"--trainer.{option}={value}" for option in ("accelerator", "precision")
                        if (value := getattr(args, option)) is not None]
        print(json.dumps(run_one(args.child, args.steps, args.warmup, args.workers, trainer_args)))
        return
    results = []
    for recipe in args.recipes:
        results.append(measure(recipe, args))
        print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu_cores": len(os.sched_getaffinity(0)), "runs": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
