"""Hub folders: every pipeline saved with ``save_pretrained`` loads back (offline, every socket failing, nothing
unpickled) with the same outputs; a repository id loads from a hand-built huggingface_hub cache with
``HF_HUB_OFFLINE=1`` and fails in one line without it; bad folders fail in one line; the folder is written
whole or not at all, never over files unless asked; the model card says what the model is and how to load it;
``mms2s export --format hub`` writes the folder the apps load."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import safetensors
import tokenizers
import yaml
from hub_fixtures import LINES, LOAD_AND_PRINT, outputs, write_checkpoints, write_inputs
from pretrained_fixtures import REPO_ROOT, REVISION, json_lines, offline_env, run_offline

import multimodal_s2s as mms
from multimodal_s2s import outputs as outputs_module
from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import CheckpointError, Task, TrainingData
from multimodal_s2s.checkpoint.hub import CONFIG_NAME, TIED_KEY, WEIGHTS_NAME
from multimodal_s2s.outputs import OutputError, write_folder
from multimodal_s2s.pipelines import PIPELINES

CLI = "import sys\nfrom multimodal_s2s.apps.cli import main\nsys.exit(main(sys.argv[1:]))"
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """Each task's checkpoint, its Hub folder, and the checkpoint pipeline's outputs on the inputs."""
    root = tmp_path_factory.mktemp("hub")
    inputs = write_inputs(root)
    checkpoints = write_checkpoints(root)
    folders, expected = {}, {}
    for task, path in checkpoints.items():
        pipeline = mms.load_pipeline(path, device="cpu")
        folders[task] = pipeline.save_pretrained(root / task.value)
        expected[task.value] = json.loads(json.dumps(outputs(pipeline, inputs)))
    return {"checkpoints": checkpoints, "folders": folders, "inputs": inputs, "expected": expected}


def _env(hf_home: Path, offline: bool) -> dict[str, str]:
    """A subprocess's environment: only ``hf_home``'s cache, this tree and its tests' fixtures importable."""
    env = offline_env(hf_home, hf_home / "torch")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(TESTS)])
    if not offline:
        del env["HF_HUB_OFFLINE"]
    return env


def _load_and_print(models: dict[str, str], inputs: dict, env: dict[str, str]) -> dict:
    done = run_offline(LOAD_AND_PRINT, env, json.dumps(models), json.dumps(inputs))
    assert done.returncode == 0, done.stderr[-3000:]
    return {record["task"]: record["outputs"] for record in json_lines(done.stdout)}


def test_every_pipeline_loads_back_from_its_hub_folder_offline_with_the_same_outputs(saved, tmp_path):
    models = {task.value: str(folder) for task, folder in saved["folders"].items()}
    loaded = _load_and_print(models, saved["inputs"], _env(tmp_path / "empty", offline=False))  # sockets fail
    assert loaded == saved["expected"]
    assert all(saved["expected"][task] for task in models)  # something was decoded and labelled
    for task, folder in saved["folders"].items():
        assert type(PIPELINES[task].from_pretrained(folder, device="cpu")) is PIPELINES[task]


def test_the_folder_keeps_the_tokenizers_standard_files_and_stores_tied_weights_once(saved):
    folder = saved["folders"][Task.TRANSLATION]
    assert sorted(path.name for path in folder.iterdir()) == [
        "README.md", CONFIG_NAME, WEIGHTS_NAME, "source.spm", "tokenizer.json"]
    header = json.loads((folder / CONFIG_NAME).read_text())["header"]
    assert header["tokenizer"]["file"] == "tokenizer.json" and "hf_tokenizer" not in header["tokenizer"]
    assert header["source_tokenizer"]["file"] == "source.spm" and "model" not in header["source_tokenizer"]
    pipeline = mms.Translator.from_pretrained(folder, device="cpu")
    standard = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))  # what the ecosystem reads
    assert standard.encode(LINES[0], add_special_tokens=False).ids == pipeline.header.tokenizer.encode(LINES[0])
    with safetensors.safe_open(folder / WEIGHTS_NAME, framework="pt") as file:
        stored, tied = set(file.keys()), json.loads(file.metadata()[TIED_KEY])
    assert tied and not set(tied) & stored and set(tied.values()) <= stored  # the output projection, once
    assert set(pipeline.weights()) == stored | set(tied)
    with safetensors.safe_open(saved["folders"][Task.ASR] / WEIGHTS_NAME, framework="pt") as file:
        assert {"ctc_head.project.weight", "ctc_head.project.bias"} <= set(file.keys())


def _cache_repo(hf_home: Path, repo_id: str, folder: Path) -> None:
    """``folder`` as huggingface_hub caches a download of ``repo_id``: snapshots/REVISION/... and refs/main."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


def test_a_repository_id_loads_from_the_hub_cache_offline(saved, tmp_path):
    _cache_repo(tmp_path / "hf", "someone/tiny-translator", saved["folders"][Task.TRANSLATION])
    env = _env(tmp_path / "hf", offline=True)
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES) + "\n")
    done = run_offline(CLI, env, "translate", str(lines), "--checkpoint", "someone/tiny-translator")
    assert done.returncode == 0, done.stderr[-3000:]
    translator = mms.Translator.from_checkpoint(saved["checkpoints"][Task.TRANSLATION], device="cpu")
    assert done.stdout.splitlines() == [translation.text for translation in translator(LINES)]


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE=1", "no network"])
def test_a_repository_id_missing_from_the_cache_fails_in_one_line(saved, tmp_path, offline):
    _cache_repo(tmp_path / "hf", "someone/tiny-translator", saved["folders"][Task.TRANSLATION])
    env = _env(tmp_path / "hf", offline=offline)
    done = run_offline(CLI, env, "caption", saved["inputs"]["image"], "--checkpoint", "someone/other-model")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: someone/other-model: no file or folder of this name, and this Hub repository is "
                           "not in the Hugging Face cache")
    assert str(tmp_path / "hf" / "hub") in line and ("HF_HUB_OFFLINE=1" in line) == offline
    assert "run once with a network" in line and "HF_HOME" in line and "mms2s export --format hub" in line


def _break(folder: Path, case: str) -> None:
    config, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if case == "no config":
        config.unlink()
    elif case == "another library":
        config.write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    elif case == "not JSON":
        config.write_text("{'header': ")
    elif case == "newer format":
        config.write_text(config.read_text().replace('"hub_format": 1', '"hub_format": 99'))
    elif case == "bad header":
        config.write_text(config.read_text().replace('"task": "translation"', '"task": "painting"'))
    elif case == "no weights":
        weights.unlink()
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif case == "pickled weights":
        shutil.copy(folder.parent / "translation.ckpt", weights)
    elif case == "no tokenizer file":
        (folder / "tokenizer.json").unlink()


BAD_FOLDERS = {
    "no config": "translation: not a multimodal_s2s Hub folder (no config.json)",
    "another library": "config.json: not a multimodal_s2s Hub folder (a config.json of 'bert', no multimodal_s2s "
                       "header)",
    "not JSON": "config.json: not readable JSON",
    "newer format": "config.json: Hub folder format 99 is not one this version reads (1)",
    "bad header": "config.json: malformed header (ValueError: 'painting' is not a valid Task)",
    "no weights": "model.safetensors: the model's weights are missing",
    "truncated weights": "model.safetensors: not a readable safetensors file",
    "pickled weights": "model.safetensors: not a readable safetensors file",
    "no tokenizer file": "tokenizer.json: tokenizer file missing or unreadable",
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_a_bad_hub_folder_fails_in_one_line(saved, tmp_path, case):
    folder = shutil.copytree(saved["folders"][Task.TRANSLATION], tmp_path / "translation")
    shutil.copy(saved["checkpoints"][Task.TRANSLATION], tmp_path / "translation.ckpt")
    _break(folder, case)
    with pytest.raises(CheckpointError) as caught:
        mms.load_pipeline(folder, device="cpu")
    message = str(caught.value)
    assert BAD_FOLDERS[case] in message and "\n" not in message
    assert str(folder) in message


def test_a_model_of_another_task_is_refused_in_one_line(saved):
    message = r"translation: the model's task is translation, but this needs captioning$"
    with pytest.raises(CheckpointError, match=message):
        mms.Captioner.from_pretrained(saved["folders"][Task.TRANSLATION], device="cpu")


def test_save_pretrained_writes_a_folder_whole_and_over_files_only_when_asked(saved, tmp_path):
    pipeline = mms.load_pipeline(saved["folders"][Task.SEGMENTATION], device="cpu")
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "new" / "model", tmp_path / "empty"):
        pipeline.save_pretrained(target)
        assert sorted(path.name for path in target.iterdir()) == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    assert sorted(path.name for path in (tmp_path / "new").iterdir()) == ["model"]  # no staging folder left
    folder = tmp_path / "empty"
    (folder / ".git").mkdir()
    (folder / WEIGHTS_NAME).write_bytes(b"old")
    with pytest.raises(OutputError, match="empty: not written, the folder has files"):
        pipeline.save_pretrained(folder)
    assert (folder / WEIGHTS_NAME).read_bytes() == b"old"
    pipeline.save_pretrained(folder, overwrite=True)
    assert (folder / ".git").is_dir() and mms.load_pipeline(folder, device="cpu").header.task == Task.SEGMENTATION


def test_a_folder_that_fails_half_written_leaves_nothing(tmp_path, monkeypatch):
    written = []

    def write_or_fail(path, write):  # the second file cannot be written (a full disk, say)
        if written:
            raise OutputError(f"{path}: could not be written (No space left on device)")
        written.append(path)
        Path(path).write_bytes(b"")

    monkeypatch.setattr(outputs_module, "atomic_write", write_or_fail)
    with pytest.raises(OutputError, match="No space left on device"):
        write_folder(tmp_path / "model", {CONFIG_NAME: b"{}", WEIGHTS_NAME: b""})
    assert written and list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_the_model_card_says_what_the_model_is_and_how_to_load_it(saved, tmp_path):
    pipeline = mms.load_pipeline(saved["checkpoints"][Task.CAPTIONING], device="cpu")
    pipeline.header = replace(pipeline.header, metrics={"val/bleu4": 0.25, "val/loss": 1.5},
                              data=TrainingData("shapes", root="/home/someone/private/data", examples=1200))
    pipeline.header.model.encoder_args["pretrained_path"] = "/home/someone/private/start.ckpt"
    folder = pipeline.save_pretrained(tmp_path / "card", repo_id="someone/shapes-captioner")
    card = (folder / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    data = yaml.safe_load(front)
    assert data["library_name"] == "multimodal_s2s" and data["pipeline_tag"] == "image-to-text"
    assert {"captioning", "cnn", "transformer"} <= set(data["tags"]) and data["metrics"] == ["bleu4"]
    result = data["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "shapes" and result["metrics"] == [{"type": "bleu4", "value": 0.25}]
    parameters = sum(p.numel() for p in pipeline.model.parameters())
    for text in ("| Task | captioning |", "| Encoder | cnn (backbone test_resnet) |", "| Decoder | transformer",
                 f"| Parameters | {parameters:,} |", "1,200 training examples", "| bleu4 | 0.25 |",
                 "## Intended use and limits", 'mms.Captioner.from_pretrained("someone/shapes-captioner")',
                 "mms2s caption photo.jpg --checkpoint someone/shapes-captioner"):
        assert text in body, text
    assert "/home/someone" not in card and "/home/someone" not in (folder / CONFIG_NAME).read_text()


def test_export_format_hub_writes_the_folder_that_the_apps_load(saved, tmp_path, capsys):
    checkpoint, image = saved["checkpoints"][Task.CAPTIONING], saved["inputs"]["image"]
    out = tmp_path / "captioner"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hub", "--out", str(out)]) == 0
    assert f"wrote the captioning Hub folder {out}" in capsys.readouterr().out
    runs = [main(["caption", image, "--checkpoint", str(model), "--json"]) for model in (checkpoint, out)]
    first, second = capsys.readouterr().out.splitlines()
    assert runs == [0, 0] and json.loads(first)["caption"] == json.loads(second)["caption"]
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hub", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"error: {out}: not written, the folder has files (overwrite=True or --overwrite replaces them)"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hub", "--out", str(out), "--overwrite"]) == 0
