"""``mms2s caption``: output formats, awkward images, and one-line errors that leave the other images captioned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from app_fixtures import COUNT_MIXES, good_ones
from captioning_fixtures import save_tiny_checkpoint, write_image
from checkpoint_helpers import segmentation_header, write_checkpoint
from PIL import Image

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import CHECKPOINT_KEY

BEAM = 2
LARGE_SIDE = 5000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_tiny_checkpoint(path)
    return path


def _caption(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = main(["caption", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def test_prints_path_tab_caption_per_image_in_order(checkpoint, tmp_path, capsys):
    paths = [write_image(tmp_path / f"{name}.png", seed=i) for i, name in enumerate("bca")]
    code, out, err = _caption(capsys, *paths, "--checkpoint", checkpoint)
    assert code == 0 and err == []
    assert [line.split("\t")[0] for line in out] == [str(p) for p in paths]
    assert all(len(line.split("\t")) == 2 and line.split("\t")[1] for line in out)


def test_json_lines_have_caption_score_and_n_best(checkpoint, tmp_path, capsys):
    path = write_image(tmp_path / "x.png")
    code, out, _ = _caption(capsys, path, "--checkpoint", checkpoint, "--json", "--beam-size", BEAM)
    assert code == 0 and len(out) == 1
    record = json.loads(out[0])
    assert set(record) == {"path", "caption", "score", "n_best"}
    assert record["path"] == str(path) and isinstance(record["score"], float)
    assert len(record["n_best"]) == BEAM and record["n_best"][0]["caption"] == record["caption"]
    assert record["n_best"][0]["score"] >= record["n_best"][1]["score"]


def test_folders_expand_to_their_images(checkpoint, tmp_path, capsys):
    for name in ("one.png", "two.jpg"):
        write_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    code, out, _ = _caption(capsys, tmp_path, "--checkpoint", checkpoint)
    assert code == 0 and [line.split("\t")[0] for line in out] == [str(tmp_path / "one.png"), str(tmp_path / "two.jpg")]


def test_awkward_images_are_all_captioned(checkpoint, tmp_path, capsys):
    rgb = Image.open(write_image(tmp_path / "base.png"))
    rgb.convert("L").save(tmp_path / "grey.png")
    rgb.convert("RGBA").save(tmp_path / "alpha.png")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb.convert("P").save(tmp_path / "palette.gif")
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.new("RGB", (LARGE_SIDE, LARGE_SIDE // 5), (90, 20, 200)).save(tmp_path / "large.jpg", quality=50)
    names = ["grey.png", "alpha.png", "cmyk.jpg", "palette.gif", "deep.png", "large.jpg"]
    code, out, err = _caption(capsys, *(tmp_path / n for n in names), "--checkpoint", checkpoint)
    assert code == 0 and err == []
    assert [line.split("\t")[0] for line in out] == [str(tmp_path / n) for n in names]


def test_bad_files_get_one_line_each_and_the_rest_are_captioned(checkpoint, tmp_path, capsys):
    good = write_image(tmp_path / "good.png")
    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture")
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(write_image(tmp_path / "whole.jpg").read_bytes()[:200])
    missing = tmp_path / "missing.png"
    code, out, err = _caption(capsys, text, good, corrupt, missing, "--checkpoint", checkpoint)
    assert code == 1
    assert out == [line for line in out if line.startswith(f"{good}\t")] and len(out) == 1
    problems = [line for line in err if line.startswith("error: ")]
    assert len(problems) == 3
    for path in (text, corrupt, missing):
        assert sum(str(path) in line for line in problems) == 1
    assert err[-1] == "3 file(s) failed, 1 captioned"


def test_missing_or_foreign_checkpoint_is_one_line(checkpoint, tmp_path, capsys):
    image = write_image(tmp_path / "x.png")
    code, out, err = _caption(capsys, image, "--checkpoint", tmp_path / "none.ckpt")
    assert code == 2 and out == [] and err == [f"error: {tmp_path / 'none.ckpt'}: checkpoint not found"]
    write_checkpoint(tmp_path / "seg.ckpt", segmentation_header())
    code, _, err = _caption(capsys, image, "--checkpoint", tmp_path / "seg.ckpt")
    assert code == 2 and len(err) == 1 and "seg.ckpt: the checkpoint's task is segmentation" in err[0]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state[CHECKPOINT_KEY]["format_version"] = 99
    torch.save(state, tmp_path / "future.ckpt")
    code, _, err = _caption(capsys, image, "--checkpoint", tmp_path / "future.ckpt")
    assert code == 2 and len(err) == 1 and "future.ckpt: header format 99 is newer" in err[0]
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    code, _, err = _caption(capsys, image, "--checkpoint", tmp_path / "junk.ckpt")
    assert code == 2 and len(err) == 1 and "junk.ckpt: not a readable checkpoint" in err[0]


def test_a_first_layout_translation_checkpoint_is_upgraded_then_refused_by_task(checkpoint, tmp_path, capsys):
    from multimodal_s2s import create_model
    from multimodal_s2s.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["abc"])
    model = create_model(
        "text_lstm_tiny", "rnn_attention", {"vocab_size": tokenizer.vocab_size}, {}, tokenizer.vocab_size
    )
    meta = {
        "task": "seq2seq",
        "model": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "source_tokenizer": tokenizer.to_dict(),
        "preprocess": {"task": "translation"},
        "decoding": {"beam_size": 1, "max_length": 8},
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: meta}, tmp_path / "mt.ckpt")
    code, out, err = _caption(capsys, write_image(tmp_path / "x.png"), "--checkpoint", tmp_path / "mt.ckpt")
    assert code == 2 and out == [] and len(err) == 1
    assert "mt.ckpt: the checkpoint's task is translation, but this needs captioning" in err[0]


def test_quickstart_captions_generated_scenes_with_a_given_checkpoint(checkpoint, tmp_path, monkeypatch, capsys):
    from multimodal_s2s.apps import quickstart

    monkeypatch.chdir(tmp_path)
    assert quickstart.main(["--checkpoint", str(checkpoint), "--images", "2"]) == 0
    out = capsys.readouterr().out
    scenes = sorted((tmp_path / "runs" / "captioning" / "quickstart").glob("scene_*.png"))
    assert [p.name for p in scenes] == ["scene_0.png", "scene_1.png"]
    captioned = [line for line in out.splitlines() if line.startswith("runs/captioning/quickstart/scene_")]
    assert len(captioned) == 2 and all(line.split("\t")[1] in ("right", "wrong") for line in captioned)
    assert out.count("    references: ") == 2
    assert "of 2 captions match a reference" in out
    assert f"mms2s demo captioning --checkpoint {checkpoint}" in out


def test_quickstart_trains_and_captions_with_its_own_run_checkpoint(tmp_path, monkeypatch, capsys):
    from multimodal_s2s.apps import quickstart

    monkeypatch.chdir(tmp_path)
    # The app quiets Lightning's loggers for the whole process (it is one); here that would leak into later tests
    monkeypatch.setattr(quickstart, "quiet_lightning", lambda: None)
    stale = tmp_path / "runs" / "captioning" / "shapes" / "version_9" / "checkpoints" / "best-epoch=000.ckpt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older run's checkpoint, not this run's")
    root = tmp_path / "elsewhere"
    overrides = ["--trainer.max_steps", "3", "--data.shapes_train_size", "24", "--data.shapes_val_size", "8",
                 "--trainer.default_root_dir", str(root)]
    assert quickstart.main(["--images", "1", "--", *overrides]) == 0
    out = capsys.readouterr().out
    assert "training: step 3/3 · loss " in out and "validation after step 3: loss " in out
    trained = next(line for line in out.splitlines() if line.startswith("trained in "))
    checkpoint = Path(trained.split("checkpoint: ")[1])
    assert checkpoint.is_file() and checkpoint.is_relative_to(root) and checkpoint.name.startswith("best-")
    assert f"mms2s demo captioning --checkpoint {checkpoint}" in out


@pytest.mark.parametrize(("inputs", "failed", "done"), COUNT_MIXES)
def test_closing_count_names_what_failed_and_what_was_captioned(checkpoint, tmp_path, capsys, inputs, failed, done):
    files = {
        "good": write_image(tmp_path / "good.png"),
        "good2": write_image(tmp_path / "good2.png", seed=1),
        "unreadable": tmp_path / "unreadable.png",
        "missing": tmp_path / "missing.png",
    }
    files["unreadable"].write_bytes(b"not a png")
    code, out, err = _caption(capsys, *(files[name] for name in inputs), "--checkpoint", checkpoint)
    assert code == 1 and err[-1] == f"{failed} file(s) failed, {done} captioned"
    assert [line.split("\t")[0] for line in out] == [str(files[name]) for name in good_ones(inputs)]
