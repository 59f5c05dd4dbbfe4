"""Outputs never destroy anything: inputs and existing files are refused unless --overwrite (which says
so), and a write that fails leaves neither a partial file under the final name nor a temporary file."""

from __future__ import annotations

import os

import pytest
from checkpoint_helpers import random_checkpoint, segmentation_header
from PIL import Image

from multimodal_s2s.apps.cli import main
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write, atomic_write_text


def test_a_failing_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("the old result")

    def half_then_fail(file):
        file.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"result\.txt: could not be written \(No space left on device\)"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "the old result" and sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    def interrupted(file):
        file.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.txt", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    target.chmod(0o640)
    atomic_write_text(target, "the new result")
    assert target.read_text() == "the new result" and target.stat().st_mode & 0o777 == 0o640
    atomic_write_text(tmp_path / "fresh.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "fresh.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_the_plan_refuses_inputs_twins_and_existing_files(tmp_path, capsys):
    source, existing = tmp_path / "a.wav", tmp_path / "old.txt"
    source.write_bytes(b"")
    existing.write_text("keep")
    plan = OutputPlan([source])
    assert "is an input of this run" in plan.claim(source, "x")
    assert plan.claim(tmp_path / "a.txt", source) is None
    assert "is already written for" in plan.claim(tmp_path / "a.txt", tmp_path / "other/a.wav")
    assert "exists (use --overwrite to replace it)" in plan.claim(existing)
    assert "is a folder" in plan.claim(tmp_path)
    assert OutputPlan([], overwrite=True).claim(existing) is None
    assert f"overwriting {existing}" in capsys.readouterr().err
    assert "exists" in plan.claim_all([tmp_path / "b.txt", existing]) and tmp_path / "b.txt" not in plan.planned


def test_segment_and_export_replace_existing_files_only_when_asked(tmp_path, capsys):
    checkpoint = random_checkpoint(tmp_path / "seg.ckpt", segmentation_header())
    image = tmp_path / "street.png"
    Image.new("RGB", (20, 10), (200, 10, 10)).save(image)
    out = tmp_path / "out"
    segment = ["segment", str(image), "--checkpoint", str(checkpoint), "--output-dir", str(out)]
    assert main(segment) == 0
    labels = out / "street_labels.png"
    labels.write_bytes(b"my own file")
    assert main(segment) == 1 and labels.read_bytes() == b"my own file"
    assert "street_labels.png exists (use --overwrite" in capsys.readouterr().err
    assert main([*segment, "--overwrite"]) == 0 and labels.read_bytes().startswith(b"\x89PNG")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"an older export")
    export = ["export", "--checkpoint", str(checkpoint), "--out", str(onnx), "--no-verify"]
    assert main(export) == 2 and onnx.read_bytes() == b"an older export"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(checkpoint)]) == 2
    assert "is an input of this run" in capsys.readouterr().err
    assert main([*export, "--overwrite"]) == 0 and onnx.read_bytes() != b"an older export"
    assert list(tmp_path.glob(".*.partial")) == []
