"""No checkpoint is ever unpickled: a checkpoint carrying a pickle payload (code that runs when a full
unpickler reads it) is refused in one line on every path that reads a checkpoint, local or by URL;
and a missing, truncated or foreign --ckpt_path, a bad option or an unwritable output folder is one
line naming the file or key."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading

import pytest
import torch
from checkpoint_helpers import segmentation_header, write_checkpoint
from recipe_fixtures import write_recipe

from multimodal_s2s import create_model
from multimodal_s2s.apps.cli import main
from multimodal_s2s.encoders.weights import WeightsError
from multimodal_s2s.pipelines import load_pipeline

APPS = ("caption", "transcribe", "segment", "translate")


class Payload:
    """Unpickling this runs ``os.system``: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def poisoned(tmp_path):
    """A checkpoint whose header is fine but which also holds a pickle payload; and the marker it would touch."""
    marker = tmp_path / "payload-ran"
    path = write_checkpoint(tmp_path / "poisoned.ckpt", segmentation_header())
    contents = torch.load(path, weights_only=True)
    contents["hyper_parameters"] = {"note": Payload(marker)}
    torch.save(contents, path)
    return path, marker


@pytest.fixture()
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path``; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_the_payload_really_runs_when_unpickled(poisoned):
    path, marker = poisoned
    torch.load(path, weights_only=False)  # what this suite never does: proves that the test can fail
    assert marker.exists()


@pytest.mark.parametrize("app", APPS)
def test_apps_refuse_the_payload(poisoned, app, tmp_path, capsys):
    path, marker = poisoned
    (tmp_path / "input.png").write_bytes(b"")
    assert main([app, str(tmp_path / "input.png"), "--checkpoint", str(path)]) == 2
    assert "poisoned.ckpt: not a readable checkpoint" in _one_error_line(capsys) and not marker.exists()


def test_python_loading_and_export_and_pretrained_path_refuse_the_payload(poisoned, tmp_path, capsys):
    path, marker = poisoned
    with pytest.raises(ValueError, match="poisoned.ckpt: not a readable checkpoint"):
        load_pipeline(path)
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "x.onnx")]) == 2
    with pytest.raises(WeightsError, match="cannot read weights file"):
        create_model("segnet_basic", "segnet", {"pretrained_path": str(path)}, num_classes=3)
    assert not marker.exists()


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_lightning_refuses_the_payload_locally_and_by_url(poisoned, served, subcommand, tmp_path, monkeypatch, capsys):
    path, marker = poisoned
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # where URLs are downloaded to
    recipe = write_recipe("segmentation", tmp_path)
    for source in (str(path), f"{served}/{path.name}"):
        assert main([subcommand, "--config", str(recipe), "--ckpt_path", source]) == 1
        assert "poisoned.ckpt: not a readable checkpoint" in _one_error_line(capsys)
    assert not marker.exists()


def test_bad_ckpt_paths_and_options_are_one_line_each(tmp_path, capsys):
    recipe = write_recipe("segmentation", tmp_path)
    assert main(["fit", "--config", str(recipe)]) == 0
    last = tmp_path / "runs" / "segmentation" / "version_0" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    foreign = tmp_path / "translation.ckpt"
    translation_recipe = write_recipe("translation", tmp_path)
    assert main(["fit", "--config", str(translation_recipe)]) == 0
    foreign.write_bytes(next((tmp_path / "runs" / "translation").glob("version_0/checkpoints/last.ckpt")).read_bytes())
    (tmp_path / "a-file").write_text("")
    cases = {
        ("--ckpt_path", str(tmp_path / "missing.ckpt")): "missing.ckpt: checkpoint not found",
        ("--ckpt_path", str(truncated)): "truncated.ckpt: not a readable checkpoint",
        ("--ckpt_path", str(foreign)): "task is translation, but the recipe's data is for segmentation",
        ("--data.init_args.batch_size", "-4"): "data.batch_size must be an integer >= 1, got -4",
        ("--trainer.default_root_dir", str(tmp_path / "a-file" / "runs")): "a-file is a file, not a folder",
    }
    for arguments, expected in cases.items():
        for subcommand in ("fit", "validate"):
            assert main([subcommand, "--config", str(recipe), *arguments]) != 0
            assert expected in _one_error_line(capsys), (subcommand, arguments)


def test_a_manifest_with_empty_transcripts_is_one_line(tmp_path, capsys):
    recipe = write_recipe("asr", tmp_path)
    manifest = tmp_path / "tones" / "train.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    entries[2]["text"] = entries[5]["text"] = " "
    manifest.write_text("\n".join(json.dumps(entry) for entry in entries) + "\n")
    assert main(["fit", "--config", str(recipe)]) == 1
    assert _one_error_line(capsys).endswith(f"{manifest}: 2 of 16 entries have an empty transcript (lines 3, 6)")
