"""An imported BART checkpoint on the other suite paths, as a user drives them: ``mms2s fit`` fine-tuning it from
``model.init_checkpoint``, ``mms2s validate`` with it as ``--ckpt_path``, and a Hub folder of it that translates
as the checkpoint does."""

from __future__ import annotations

import pytest
import torch
from bart_fixtures import build_bart_folder
from marian_fixtures import sentences
from recipe_fixtures import write_recipe

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import MODEL_PREFIX, read_checkpoint
from multimodal_s2s.pipelines import Translator

pytest.importorskip("transformers", reason="HF transformers (the bench extra) builds the BART folder")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bart")
    out = folder / "bart.ckpt"
    assert main(["import", "bart", str(build_bart_folder(folder / "tiny")), str(out)]) == 0
    return out


def test_fine_tune_then_validate_as_a_user(checkpoint, tmp_path):
    """The tiny translation recipe (dates) fine-tunes the imported model: its tokenizer and layout are kept."""
    recipe = write_recipe("translation", tmp_path)
    assert main(["fit", "--config", str(recipe), "--model.init_args.init_checkpoint", str(checkpoint),
                 "--trainer.max_steps", "2"]) == 0
    tuned = read_checkpoint(next((tmp_path / "runs").rglob("last.ckpt")))
    start = read_checkpoint(checkpoint)
    assert tuned.header.tokenizer == start.header.tokenizer and tuned.header.model == start.header.model
    assert tuned.global_step == 2
    name = MODEL_PREFIX + "decoder.embed_norm.weight"
    assert not torch.equal(tuned.state_dict[name], start.state_dict[name])  # trained
    assert main(["validate", "--config", str(recipe), "--ckpt_path", str(checkpoint)]) == 0


def test_hub_folder_translates_as_the_checkpoint(checkpoint, tmp_path):
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hub", "--out", str(tmp_path / "hub")]) == 0
    lines = sentences(6, seed=3)
    expected = [translation.text for translation in Translator.from_checkpoint(checkpoint, "cpu")(lines)]
    assert [translation.text for translation in Translator.from_pretrained(tmp_path / "hub", "cpu")(lines)] == expected


def test_onnx_export_refuses_in_one_line_and_writes_nothing(checkpoint, tmp_path, capsys):
    """The decoder's prompt and learned positions are not in the ONNX step graph yet."""
    out = tmp_path / "onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) != 0
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(checkpoint) in error and "BART" in error
    assert not out.exists() and list(tmp_path.iterdir()) == []
