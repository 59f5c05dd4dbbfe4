"""The training lifecycle of every task from the command line: fit, test and predict with the
checkpoint; validate takes the checkpoint's tokenizers whatever the data options say; a killed run
resumes from its last checkpoint; one key places a run's outputs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from asr_fixtures import write_tone_manifest
from recipe_fixtures import EVALUATION_SIZE, TASKS, write_recipe

from multimodal_s2s.apps.cli import main
from multimodal_s2s.apps.training import suite_cli
from multimodal_s2s.checkpoint import read_checkpoint
from multimodal_s2s.lit.runs import latest_last_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TEST_METRIC = {"captioning": "test/bleu4", "asr": "test/wer", "segmentation": "test/miou",
               "translation": "test/exact_match"}
KILL_AFTER_STEP = 20
RESUME_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict[str, Path]:
    """Each task's tiny recipe, fitted for one epoch with ``mms2s fit``."""
    folder = tmp_path_factory.mktemp("recipes")
    recipes = {task: write_recipe(task, folder) for task in TASKS}
    for recipe in recipes.values():
        assert main(["fit", "--config", str(recipe)]) == 0
    return recipes


def _run_dir(recipe: Path) -> Path:
    return recipe.parent / "runs" / recipe.stem


@pytest.mark.parametrize("task", TASKS)
def test_test_and_predict_run_from_the_checkpoint_on_every_task(fitted, task):
    recipe = fitted[task]
    cli = suite_cli(["test", "--config", str(recipe), "--ckpt_path", "last"])
    logged = cli.trainer.callback_metrics
    assert TEST_METRIC[task] in logged and "test/loss" in logged and torch.isfinite(logged["test/loss"])
    assert main(["predict", "--config", str(recipe), "--ckpt_path", "best"]) == 0
    (predictions,) = _run_dir(recipe).glob("version_*/predictions.jsonl")
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == EVALUATION_SIZE[task] and all(isinstance(r["id"], str) and r["id"] for r in records)
    if task == "segmentation":
        assert all((predictions.parent / r["labels"]).is_file() for r in records)
        assert all(abs(sum(r["class_fractions"].values()) - 1) < 1e-3 for r in records)
    else:
        assert all(isinstance(r["prediction"], str) and r["references"] for r in records)


@pytest.mark.parametrize(
    ("task", "changed"),
    [
        ("translation", ["--data.init_args.dates_train_size", "40", "--data.init_args.batch_size", "7"]),
        ("asr", ["--data.init_args.batch_size", "3"]),
    ],
)
def test_validate_uses_the_checkpoints_tokenizer_whatever_the_data_options(fitted, task, changed, tmp_path):
    recipe = fitted[task]
    checkpoint = latest_last_checkpoint(_run_dir(recipe))
    if task == "asr":  # another training set: a tokenizer rebuilt from it would differ
        changed = [*changed, "--data.init_args.root", str(write_tone_manifest(tmp_path, 3, seed=9, name="other"))]
    metric = TEST_METRIC[task].replace("test/", "val/")
    as_trained = suite_cli(["validate", "--config", str(recipe), "--ckpt_path", str(checkpoint)])
    with_changes = suite_cli(["validate", "--config", str(recipe), "--ckpt_path", str(checkpoint), *changed])
    expected = float(as_trained.trainer.callback_metrics[metric])
    assert float(with_changes.trainer.callback_metrics[metric]) == pytest.approx(expected, abs=1e-6)
    assert read_checkpoint(checkpoint).header.metrics[metric] == pytest.approx(expected, abs=1e-6)


def test_labels_outside_the_checkpoints_vocabulary_are_counted_in_a_warning(fitted, tmp_path):
    manifest = write_tone_manifest(tmp_path, 2, seed=3, name="val")
    lines = manifest.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["text"] = "zebra quiz"  # letters that the tone words never use
    manifest.write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    checkpoint = latest_last_checkpoint(_run_dir(fitted["asr"]))
    with pytest.warns(UserWarning, match=r"val split: 1 of 2 references hold \d+ tokens .* outside the checkpoint"):
        suite_cli(["validate", "--config", str(fitted["asr"]), "--ckpt_path", str(checkpoint),
                   "--data.init_args.val_root", str(manifest)])


def test_one_key_places_a_run(fitted, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    recipe = fitted["segmentation"]
    before = sorted(_run_dir(recipe).iterdir())
    assert main(["fit", "--config", str(recipe), "--trainer.default_root_dir", str(elsewhere)]) == 0
    assert sorted(_run_dir(recipe).iterdir()) == before  # nothing new where the recipe would have put it
    version = elsewhere / "version_0"
    assert {p.name for p in version.iterdir()} >= {"checkpoints", "metrics.csv", "config.yaml"}
    assert (version / "checkpoints" / "last.ckpt").is_file()


def test_resume_last_continues_a_killed_run_from_its_last_checkpoint(tmp_path, caplog):
    recipe = write_recipe("translation", tmp_path, max_epochs=1000, every_n_train_steps=5)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "multimodal_s2s.apps.cli", "fit", "--config", str(recipe)]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = _run_dir(recipe) / "version_0" / "checkpoints" / "last.ckpt"
    try:
        saved_step = _wait_for_step(last, process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    saved_step = torch.load(last, weights_only=True)["global_step"]  # it may have saved again before dying
    target = saved_step + 7
    with caplog.at_level(logging.INFO):
        assert main(["fit", "--config", str(recipe), "--ckpt_path", "last", "--trainer.max_steps", str(target)]) == 0
    assert f"starting from {last}" in caplog.text
    resumed = latest_last_checkpoint(_run_dir(recipe))
    assert resumed.parent.parent.name == "version_1" and torch.load(resumed, weights_only=True)["global_step"] == target
    steps = [int(row.split(",")[_column(resumed, "step")]) for row in _metric_rows(resumed)]
    assert min(steps) >= saved_step  # the resumed run did not start again from step 0


def _wait_for_step(last: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + RESUME_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the training run ended before it could be killed"
        if last.is_file():
            step = torch.load(last, weights_only=True)["global_step"]
            if step >= KILL_AFTER_STEP:
                return step
        time.sleep(0.5)
    raise AssertionError(f"no last.ckpt at step {KILL_AFTER_STEP} within {RESUME_TIMEOUT_S} s")


def _metric_rows(checkpoint: Path) -> list[str]:
    return (checkpoint.parent.parent / "metrics.csv").read_text().splitlines()[1:]


def _column(checkpoint: Path, name: str) -> int:
    header = (checkpoint.parent.parent / "metrics.csv").read_text().splitlines()[0].split(",")
    return header.index(name)
