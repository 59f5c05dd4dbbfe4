"""The CPU recipes' callbacks through ``mms2s fit``: the learning curve (JSON + PNG, every validation, carried
through a resume) and the averaged checkpoint (the mean of the last validations' weights, read by test)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from recipe_fixtures import write_recipe

from multimodal_s2s.apps.cli import main
from multimodal_s2s.apps.training import suite_cli
from multimodal_s2s.checkpoint import read_checkpoint
from multimodal_s2s.lit.callbacks import AverageCheckpoints, average
from multimodal_s2s.lit.runs import run_versions

EPOCHS, LAST = 3, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny dates recipe fitted for 3 epochs in token-count batches (as the Multi30k CPU recipe) with both
    callbacks and a checkpoint every epoch."""
    folder = tmp_path_factory.mktemp("callbacks")
    recipe = write_recipe("translation", folder, max_epochs=EPOCHS)
    config = yaml.safe_load(recipe.read_text())
    config["trainer"]["callbacks"][0]["init_args"].update(save_top_k=-1, filename="epoch-{epoch}")
    config["data"]["init_args"]["max_batch_tokens"] = 512
    config["trainer"]["callbacks"] += [
        {"class_path": "multimodal_s2s.lit.callbacks.LearningCurve"},
        {"class_path": "multimodal_s2s.lit.callbacks.AverageCheckpoints", "init_args": {"last": LAST}},
    ]
    recipe.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(recipe)]) == 0
    return recipe, folder / "runs" / "translation" / "version_0"


def test_curve_has_one_point_per_validation_with_its_clock(run):
    _, version = run
    points = json.loads((version / "curve.json").read_text())["points"]
    assert [p["epoch"] for p in points] == list(range(EPOCHS))
    assert all(later["step"] > earlier["step"] and later["wall_s"] > earlier["wall_s"]
               for earlier, later in zip(points, points[1:], strict=False))
    assert all("val/exact_match" in p and "val/loss" in p for p in points)
    assert (version / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_averaged_checkpoint_is_the_mean_of_the_last_epochs_and_tests(run):
    recipe, version = run
    checkpoints = version / "checkpoints"
    epochs = [read_checkpoint(checkpoints / f"epoch-epoch={e}.ckpt").state_dict for e in range(EPOCHS - LAST, EPOCHS)]
    averaged = read_checkpoint(checkpoints / "averaged.ckpt")
    key = "model.decoder.output.weight"
    assert torch.allclose(averaged.state_dict[key], (epochs[0][key] + epochs[1][key]) / 2, atol=1e-6)
    assert not torch.equal(averaged.state_dict[key], epochs[1][key])
    assert averaged.header.metrics == {}  # not measured: test tells
    cli = suite_cli(["test", "--config", str(recipe), "--ckpt_path", str(checkpoints / "averaged.ckpt")])
    assert "test/exact_match" in cli.trainer.callback_metrics


def test_average_keeps_integer_buffers_and_dtypes():
    states = [{"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(1)},
              {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(2)}]
    mean = average(states)
    assert mean["w"].tolist() == [2.0, 4.0] and mean["n"].item() == 2 and mean["n"].dtype == torch.long
    with pytest.raises(ValueError, match="AverageCheckpoints last must be an integer >= 1, got 0"):
        AverageCheckpoints(0)


def test_a_resumed_run_goes_on_with_its_curve(run):
    recipe, version = run
    assert main(["fit", "--config", str(recipe), "--ckpt_path", "last", "--trainer.max_epochs", str(EPOCHS + 1)]) == 0
    before = json.loads((version / "curve.json").read_text())["points"]
    (_, resumed), *_ = run_versions(version.parent)  # newest first
    after = json.loads((resumed / "curve.json").read_text())["points"]
    assert after[:EPOCHS] == before and after[-1]["epoch"] == EPOCHS and after[-1]["wall_s"] > before[-1]["wall_s"]
