"""Every task's tiny recipe under Lightning's DDP in 2 gloo processes on the CPU, from the command line
(``--trainer.devices 2 --trainer.strategy ddp``): one run folder and one checkpoint per save, validation
figures equal to one process on the same checkpoint, a resumed run that goes on from its step, and
``predict`` merging the ranks' records into one ``predictions.jsonl`` in input order, equal to one
process's. Slow: each command starts two processes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipe_fixtures import EVALUATION_SIZE, TASKS, write_recipe

ROOT = Path(__file__).resolve().parents[2]
DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
COMMAND_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def mms2s(*args: str) -> None:
    """``python -m multimodal_s2s.apps.cli ARGS`` in a child process (Lightning's DDP launcher starts the
    second rank by running the same command again); fails the test with its output unless it exits 0."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "multimodal_s2s.apps.cli", *args]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"


def run_folders(recipe: Path) -> list[Path]:
    return sorted((recipe.parent / "runs" / recipe.stem).glob("version_*"), key=lambda p: int(p.name[8:]))


def last_row(folder: Path, prefix: str) -> dict[str, float]:
    """The figures starting with ``prefix`` in the last row of ``folder/metrics.csv`` that has them."""
    with (folder / "metrics.csv").open() as file:
        rows = [{k: float(v) for k, v in row.items() if k.startswith(prefix) and v} for row in csv.DictReader(file)]
    return [row for row in rows if row][-1]


def predictions(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", TASKS)
def test_ddp_fit_validate_resume_and_predict(task, tmp_path):
    recipe = write_recipe(task, tmp_path)
    mms2s("fit", "--config", str(recipe), *DDP)
    (fitted,) = run_folders(recipe)  # rank 1 made no run folder of its own
    checkpoints = sorted(p.name for p in (fitted / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints, checkpoints  # one best, one last; no copies
    assert not list(fitted.glob("**/*.partial"))
    last = fitted / "checkpoints" / "last.ckpt"
    steps_per_epoch = torch.load(last, weights_only=True)["global_step"]

    # Validation: the same figures from 2 ranks as from 1 (each example counted once).
    mms2s("validate", "--config", str(recipe), "--ckpt_path", str(last), *DDP)
    mms2s("validate", "--config", str(recipe), "--ckpt_path", str(last), "--trainer.devices", "1")
    two_ranks, one_process = (last_row(folder, "val/") for folder in run_folders(recipe)[1:3])
    assert two_ranks.keys() == one_process.keys() and len(two_ranks) >= 2
    for key, value in one_process.items():
        # val/loss is a mean over target tokens, but ASR's CTC share is a mean per utterance (Seq2SeqModule)
        tolerance = 1e-3 if (task, key) == ("asr", "val/loss") else 1e-5
        assert two_ranks[key] == pytest.approx(value, rel=tolerance, abs=1e-6), key

    # Resume: another epoch from the last checkpoint, under DDP.
    mms2s("fit", "--config", str(recipe), "--ckpt_path", "last", "--trainer.max_epochs", "2", *DDP)
    resumed = run_folders(recipe)[-1] / "checkpoints" / "last.ckpt"
    assert torch.load(resumed, weights_only=True)["global_step"] == 2 * steps_per_epoch

    # Predict: one file, every example once, in input order, the same records as one process writes.
    mms2s("predict", "--config", str(recipe), "--ckpt_path", str(last), *DDP)
    mms2s("predict", "--config", str(recipe), "--ckpt_path", str(last), "--trainer.devices", "1")
    two_ranks_folder, one_process_folder = run_folders(recipe)[-2:]
    assert not list(two_ranks_folder.glob(".predictions*"))  # the ranks' own files were merged and removed
    merged, single = predictions(two_ranks_folder), predictions(one_process_folder)
    assert len(merged) == EVALUATION_SIZE[task]
    if task == "segmentation":  # label PNGs are named per run; compare what they hold
        merged = [{**r, "labels": (two_ranks_folder / r["labels"]).read_bytes()} for r in merged]
        single = [{**r, "labels": (one_process_folder / r["labels"]).read_bytes()} for r in single]
    assert merged == single
