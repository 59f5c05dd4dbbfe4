"""mms2s segment and mms2s export: both PNGs written, inputs never overwritten, bad files skipped,
and the ONNX export runs in onnxruntime with PyTorch's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from app_fixtures import COUNT_MIXES, good_ones
from checkpoint_helpers import segmentation_header, text_header, write_checkpoint
from PIL import Image

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.data.segmentation import voc_palette
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.pipelines.overlays import legend_rows
from multimodal_s2s.pipelines.segmentation import Segmentation

NUM_CLASSES = 3


def _write_checkpoint(path):
    module = SegmentationModule(encoder="segnet_basic")
    module.use_header(segmentation_header())
    return write_checkpoint(path, segmentation_header(), module.state_dict())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _write_checkpoint(tmp_path_factory.mktemp("ckpt") / "seg.ckpt")


def _photo(path, size=(40, 30), mode="RGB"):
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def test_segment_writes_a_palette_label_png_and_an_overlay(checkpoint, tmp_path, capsys):
    photo = _photo(tmp_path / "street.jpg")
    grey = _photo(tmp_path / "grey.png", size=(20, 50), mode="L")
    out = tmp_path / "out"
    assert main(["segment", str(photo), str(grey), "--checkpoint", str(checkpoint), "--output-dir", str(out)]) == 0
    labels = Image.open(out / "street_labels.png")
    assert labels.mode == "P" and labels.size == (40, 30)
    assert set(np.unique(np.asarray(labels))) <= set(range(NUM_CLASSES))
    assert labels.getpalette()[:9] == sum(voc_palette(NUM_CLASSES), [])
    overlay = Image.open(out / "street_overlay.png")
    assert overlay.mode == "RGB" and overlay.size[0] > 40 and overlay.size[1] >= 30  # the photo, then the legend
    assert Image.open(out / "grey_labels.png").size == (20, 50)
    assert "street_overlay.png" in capsys.readouterr().out


def test_segment_skips_bad_files_and_never_overwrites_inputs(checkpoint, tmp_path, capsys):
    good = _photo(tmp_path / "good.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    victim = _photo(tmp_path / "a_labels.png")  # an input named like the output of a.png
    source = _photo(tmp_path / "a.png")
    before = victim.read_bytes()
    names = [str(good), str(corrupt), str(tmp_path / "missing.png"), str(victim), str(source)]
    code = main(["segment", *names, "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{corrupt}: not an image file" in err and f"{tmp_path / 'missing.png'}: file not found" in err
    assert f"{source}: not written, its output {victim} is an input of this run" in err
    assert victim.read_bytes() == before  # untouched
    assert (tmp_path / "good_labels.png").is_file() and (tmp_path / "good_overlay.png").is_file()


def test_segment_refuses_a_checkpoint_of_another_task(tmp_path, capsys):
    other = write_checkpoint(tmp_path / "captions.ckpt", text_header(Task.CAPTIONING))
    photo = str(_photo(tmp_path / "x.png"))
    code = main(["segment", photo, "--checkpoint", str(other), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "captions.ckpt: the checkpoint's task is captioning, but this needs segmentation" in err
    assert "\n" not in err
    missing = tmp_path / "nothing.ckpt"
    assert main(["segment", photo, "--checkpoint", str(missing), "--output-dir", str(tmp_path)]) == 2
    assert f"{missing}: checkpoint not found" in capsys.readouterr().err


def test_onnx_export_matches_pytorch_in_onnxruntime(checkpoint, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "seg.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert "onnxruntime vs PyTorch" in capsys.readouterr().out
    graph = onnx.load(str(out))
    assert "ScatterElements" in {node.op_type for node in graph.graph.node}  # the exportable max-unpooling
    properties = {prop.key: prop.value for prop in graph.metadata_props}
    assert json.loads(properties["mms2s.labels"])["class_names"] == ["bg", "cat", "dog"]
    assert json.loads(properties["mms2s.preprocessing"])["image_size"] == [32, 48]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = model_from_checkpoint(read_checkpoint(checkpoint, Task.SEGMENTATION))
    images = torch.randn(3, 3, 64, 80)  # another batch and size than the export's example
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images).numpy()
    assert logits.shape == (3, NUM_CLASSES, 64, 80)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_export_refuses_unusable_checkpoints_and_bad_paths(tmp_path, capsys):
    """A text-out checkpoint goes to the folder export (tests/onnx), which refuses one without weights."""
    other = write_checkpoint(tmp_path / "asr.ckpt", text_header(Task.ASR))
    assert main(["export", "--checkpoint", str(other), "--out", str(tmp_path / "x_onnx")]) == 2
    assert "asr.ckpt: cannot rebuild the model from this checkpoint" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(other), "--out", str(tmp_path)]) == 2
    assert "exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "y.onnx")]) == 2
    segmentation = write_checkpoint(tmp_path / "seg.ckpt", segmentation_header())
    command = ["export", "--checkpoint", str(segmentation), "--out", str(tmp_path / "z.onnx"), "--quantize", "int8"]
    assert main(command) == 2
    assert "--quantize applies to text-out exports" in capsys.readouterr().err


def test_overlay_leaves_background_and_void_pixels_and_draws_a_legend():
    photo = Image.fromarray(np.full((40, 60, 3), 100, dtype=np.uint8))
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[10:20, 10:30] = 1  # "cat"
    labels[30:, :] = 255  # void: no class
    palette = np.asarray(voc_palette(NUM_CLASSES), dtype=np.uint8)
    result = Segmentation(labels, photo, ["bg", "cat", "dog"], palette)
    overlay = np.asarray(result.overlay(alpha=0.5, background="bg"))
    assert (overlay[:40, :60][labels != 1] == 100).all()  # background and void: the photo as it was
    assert (overlay[15, 20] == np.rint(0.5 * 100 + 0.5 * palette[1])).all()
    legend = overlay[:, 60:]
    assert legend.shape[1] > 0 and (legend == palette[1]).all(axis=-1).any()  # the cat's swatch
    assert not (legend == palette[2]).all(axis=-1).any()  # dog is absent: not listed
    assert [text.split()[0] for _, text in legend_rows(labels, result.class_names, 0)] == ["bg", "cat"]
    assert result.overlay(legend=False).size == photo.size
    with pytest.raises(ValueError, match="background class 'sky' is not one of bg, cat, dog"):
        result.overlay(background="sky")


@pytest.mark.parametrize(("inputs", "failed", "done"), COUNT_MIXES)
def test_segment_closing_count_names_what_failed_and_what_was_done(checkpoint, tmp_path, capsys, inputs, failed, done):
    files = {
        "good": _photo(tmp_path / "good.png"),
        "good2": _photo(tmp_path / "good2.jpg"),
        "unreadable": tmp_path / "unreadable.png",
        "missing": tmp_path / "missing.png",
    }
    files["unreadable"].write_bytes(b"not a png")
    out = tmp_path / "out"
    names = [str(files[name]) for name in inputs]
    code = main(["segment", *names, "--checkpoint", str(checkpoint), "--output-dir", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and err[-1] == f"{failed} file(s) failed, {done} segmented"
    assert sorted(p.name for p in out.glob("*_labels.png")) == sorted(f"{n}_labels.png" for n in good_ones(inputs))
