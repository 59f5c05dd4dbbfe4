"""The preprocessing floor: input files for the apps, text lines, and the Segmenter preparing images as
evaluation does in training."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from checkpoint_helpers import random_checkpoint, segmentation_header
from PIL import Image

from multimodal_s2s.pipelines import Segmenter
from multimodal_s2s.pipelines.segmentation import BACKGROUND_NAME, default_background
from multimodal_s2s.preprocessing.files import AUDIO_SUFFIXES, IMAGE_SUFFIXES, expand_inputs, read_lines
from multimodal_s2s.preprocessing.segmentation_transforms import apply_transform, segmentation_transform


def test_expand_inputs_lists_folders_and_reports_missing_and_empty_ones(tmp_path):
    (tmp_path / "photos" / "deeper").mkdir(parents=True)
    for name in ("b.JPG", "a.png", "notes.txt", "deeper/c.png"):
        (tmp_path / "photos" / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    names = [str(tmp_path / "photos"), str(tmp_path / "gone.png"), str(tmp_path / "empty")]
    paths, problems = expand_inputs(names, IMAGE_SUFFIXES, "images")
    assert [p.name for p in paths] == ["a.png", "b.JPG"]  # not recursive by default
    assert problems == [f"{tmp_path / 'gone.png'}: file not found", f"{tmp_path / 'empty'}: folder holds no images"]
    deep, _ = expand_inputs([str(tmp_path / "photos")], IMAGE_SUFFIXES, "images", recursive=True)
    assert [p.relative_to(tmp_path / "photos").as_posix() for p in deep] == ["a.png", "b.JPG", "deeper/c.png"]


def test_expand_inputs_keeps_files_given_by_name_whatever_their_suffix(tmp_path):
    odd = tmp_path / "talk.data"
    odd.write_bytes(b"")
    assert expand_inputs([str(odd)], AUDIO_SUFFIXES, "audio files") == ([odd], [])


def test_read_lines_reads_plain_and_gzipped_text_and_names_bad_files(tmp_path):
    plain, packed = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_bytes(b"one\r\ntwo\xe2\x80\xa8half\n")
    packed.write_bytes(gzip.compress(b"one\ntwo\n"))
    assert read_lines(plain) == ["one", "two\u2028half"] and read_lines(packed) == ["one", "two"]
    (tmp_path / "bad.txt").write_bytes(b"\xff\n")
    with pytest.raises(ValueError, match="bad.txt: not UTF-8 text"):
        read_lines(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="gone.txt: file not found"):
        read_lines(tmp_path / "gone.txt")


def test_default_background_is_the_background_class_when_there_is_one():
    assert default_background(["car", BACKGROUND_NAME]) == BACKGROUND_NAME
    assert default_background(["bg", "cat"]) is None


@pytest.mark.parametrize("size", [(48, 32), (33, 97), (301, 203)])
def test_segmenter_prepares_images_as_evaluation_does(tmp_path, size):
    header = segmentation_header()
    segmenter = Segmenter.from_checkpoint(random_checkpoint(tmp_path / "s.ckpt", header), "cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    prep = header.preprocessing
    evaluation = segmentation_transform(prep.image_size, False, 255, mean=prep.mean, std=prep.std)
    expected, _ = apply_transform(evaluation, image, np.zeros(pixels.shape[:2], dtype=np.int64))
    assert torch.equal(segmenter._prepare(image), expected)
