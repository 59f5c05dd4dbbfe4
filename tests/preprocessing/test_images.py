"""The shared image loader: every mode to RGB, large images shrunk while decoding, one-line errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, JpegImagePlugin
from torchvision.transforms.v2 import functional as TF

from multimodal_s2s.preprocessing.files import IMAGE_SUFFIXES, find_files
from multimodal_s2s.preprocessing.images import (
    ALPHA_BACKGROUND,
    ImageLoadError,
    ImageTooLargeError,
    load_image,
)
from multimodal_s2s.preprocessing.segmentation_transforms import segmentation_transform


def _save(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


def test_grayscale_becomes_rgb_with_equal_channels(tmp_path):
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    image = load_image(_save(grey, tmp_path / "grey.png"))
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape == (8, 8, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all() and pixels[7, 7, 0] == 252


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    samples = np.array([[0, 257 * 100], [65535, 32768]], dtype=np.uint16)
    image = load_image(_save(Image.fromarray(samples), tmp_path / "deep.png"))
    assert np.asarray(image)[..., 1].tolist() == [[0, 100], [255, 128]]


def test_rgba_transparent_pixels_are_composited_over_the_background(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque
    rgba[1, 1] = (200, 0, 0, 0)  # fully transparent
    pixels = np.asarray(load_image(_save(Image.fromarray(rgba), tmp_path / "alpha.png")))
    assert pixels[0, 0].tolist() == [10, 20, 30]
    assert pixels[1, 1].tolist() == list(ALPHA_BACKGROUND)


def test_palette_and_cmyk_images_keep_their_colours(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert np.asarray(load_image(_save(palette, tmp_path / "p.png")))[0, 0].tolist() == [255, 0, 0]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    red = np.asarray(load_image(_save(cmyk, tmp_path / "c.jpg", quality=100)))[0, 0]
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (3000, 2000), (0, 128, 255)), tmp_path / "big.jpg")
    drafts = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original_draft(self, mode, size)
        drafts.append(self.size)  # the size the decoder will produce
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    image = load_image(path, max_side=300)
    assert image.size == (300, 200)
    assert drafts and max(drafts[-1]) < 3000  # never decoded at full size


def test_small_images_are_not_resized(tmp_path):
    assert load_image(_save(Image.new("RGB", (50, 30)), tmp_path / "s.png"), max_side=64).size == (50, 30)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"definitely not an image", "not an image file"), (None, "file not found")],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_truncated_jpeg_is_reported_as_corrupt(tmp_path):
    whole = _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), tmp_path / "w.jpg")
    truncated = tmp_path / "t.jpg"
    truncated.write_bytes(whole.read_bytes()[:400])
    with pytest.raises(ImageLoadError, match=r"t\.jpg: corrupt or unreadable image"):
        load_image(truncated)


def test_open_files_load_and_too_many_pixels_are_refused_before_decoding(monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 20, 30)).save(buffer, format="PNG")
    buffer.seek(0)
    assert load_image(buffer, max_pixels=60_000, name="upload.png").getpixel((0, 0)) == (10, 20, 30)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded an image over the limit"))
    buffer.seek(0)
    with pytest.raises(ImageTooLargeError, match=r"^upload.png: 300 x 200 pixels \(0.1 MP\) is more than the limit"):
        load_image(buffer, max_pixels=59_999, name="upload.png")
    with pytest.raises(ImageLoadError, match="^upload.png: not an image file"):
        load_image(io.BytesIO(b"text"), name="upload.png")


def test_find_files_lists_only_image_files(tmp_path):
    for name in ("b.PNG", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_files(tmp_path, IMAGE_SUFFIXES)] == ["a.jpg", "b.PNG"]


def test_evaluation_transform_applies_mean_and_std():
    image = Image.new("RGB", (3, 2), (255, 0, 51))
    transform = segmentation_transform((2, 3), train=False, ignore_index=255, mean=(0.5, 0.0, 0.1), std=(0.5, 1.0, 0.5))
    tensor = transform(TF.to_image(image))
    assert tensor.shape == (3, 2, 3)
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))
