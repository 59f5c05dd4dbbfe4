"""Segmentation data: every format loads (real CamVid where present), masks stay aligned under
augmentation, and bad files give one-line errors that name them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_data
from PIL import Image

from multimodal_s2s.data.segmentation import (
    SegmentationDataModule,
    class_pixel_counts,
    load_mask,
    read_pair_list,
    voc_palette,
)
from multimodal_s2s.data.shapes import CLASS_NAMES
from multimodal_s2s.preprocessing.images import IMAGENET_MEAN, IMAGENET_STD, ImageLoadError
from multimodal_s2s.preprocessing.segmentation_transforms import apply_transform, segmentation_transform

CAMVID_CLASSES, CAMVID_VOID = 11, 11
#: Distinct colours of the classes in the alignment test images.
CLASS_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def _write_voc_folder(split_dir, count=2, size=(24, 20)):
    """images/NAME.jpg with palette masks/NAME.png (classes 0..2, a 255 boundary), Pascal VOC style."""
    (split_dir / "images").mkdir(parents=True)
    (split_dir / "masks").mkdir()
    masks = []
    for index in range(count):
        mask = np.zeros(size[::-1], dtype=np.uint8)
        mask[:, size[0] // 2 :] = 1 + index % 2
        mask[:, size[0] // 2] = 255
        palette_mask = Image.fromarray(mask, mode=None)
        palette_mask.putpalette(sum(voc_palette(256), []))
        palette_mask.save(split_dir / "masks" / f"img{index}.png")
        Image.fromarray(CLASS_COLOURS[np.minimum(mask, 3)]).save(split_dir / "images" / f"img{index}.jpg")
        masks.append(mask)
    return masks


def test_shapes_batches_have_the_declared_shapes_and_are_seeded():
    data = SegmentationDataModule(image_size=(32, 32), batch_size=4, shapes_train_size=8, shapes_val_size=4)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert batch["images"].shape == (4, 3, 32, 32) and batch["images"].dtype == torch.float32
    assert batch["masks"].shape == (4, 32, 32) and batch["masks"].dtype == torch.long
    assert data.labels.class_names == tuple(CLASS_NAMES) and data.num_classes == len(CLASS_NAMES)
    assert 0 < batch["masks"].max() < len(CLASS_NAMES)
    again = SegmentationDataModule(image_size=(32, 32), batch_size=4, shapes_train_size=8, shapes_val_size=4)
    again.setup("fit")
    assert torch.equal(next(iter(again.val_dataloader()))["masks"], batch["masks"])
    assert not torch.equal(data.build_dataset("train", "train")[0]["masks"], data.datasets["val"][0]["masks"])


def test_real_camvid_list_files_load():
    root = shared_data("camvid")
    data = SegmentationDataModule(format="list", root=str(root), train_split="train.txt", val_split="val.txt",
                                  ignore_index=CAMVID_VOID, image_size=(360, 480), batch_size=2)
    data.setup("fit")
    assert data.num_classes == CAMVID_CLASSES and data.labels.class_names[0] == "Sky"
    assert len(data.datasets["train"]) == 367 and len(data.datasets["val"]) == 101
    sample = data.datasets["val"][0]
    assert sample["images"].shape == (3, 360, 480) and sample["masks"].shape == (360, 480)
    values = set(sample["masks"].unique().tolist())
    assert values <= set(range(CAMVID_CLASSES)) | {CAMVID_VOID} and len(values) > 3
    raw = load_mask(data.datasets["val"].pairs[0][1])
    assert torch.equal(sample["masks"], torch.from_numpy(raw))  # evaluation at the native size: untouched


def test_voc_palette_masks_in_folders_keep_their_indices(tmp_path):
    masks = _write_voc_folder(tmp_path / "train")
    _write_voc_folder(tmp_path / "val")
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a", "b"],
                                  image_size=(20, 24), augment=False, batch_size=2)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert Image.open(tmp_path / "val" / "masks" / "img0.png").mode == "P"
    assert batch["masks"][0].numpy().tolist() == masks[0].astype(np.int64).tolist()
    assert data.labels.palette[:2] == ((0, 0, 0), (128, 0, 0))


def test_native_size_scoring_keeps_each_mask_at_its_files_size(tmp_path):
    _write_voc_folder(tmp_path / "train")
    small = _write_voc_folder(tmp_path / "val", count=1, size=(24, 20))[0]
    large = _write_voc_folder(tmp_path / "other", count=1, size=(36, 28))[0]
    for kind, suffix in (("images", "jpg"), ("masks", "png")):
        (tmp_path / "other" / kind / f"img0.{suffix}").rename(tmp_path / "val" / kind / f"img1.{suffix}")
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a", "b"],
                                  image_size=(16, 16), augment=False, batch_size=2, native_size_scoring=True)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert batch["images"].shape == (2, 3, 16, 16) and batch["mask_sizes"].tolist() == [[20, 24], [28, 36]]
    assert batch["masks"].shape == (2, 28, 36)
    assert batch["masks"][0, :20, :24].numpy().tolist() == small.astype(np.int64).tolist()
    assert (batch["masks"][0, 20:] == 255).all() and (batch["masks"][0, :, 24:] == 255).all()
    assert batch["masks"][1].numpy().tolist() == large.astype(np.int64).tolist()
    assert next(iter(data.train_dataloader()))["masks"].shape == (2, 16, 16)
    with pytest.raises(ValueError, match="native_size_scoring.*shapes"):
        SegmentationDataModule(native_size_scoring=True)


def test_camvid_style_list_with_relative_paths(tmp_path):
    _write_voc_folder(tmp_path / "set")
    (tmp_path / "train.txt").write_text(
        "set/images/img0.jpg set/masks/img0.png\n\nset/images/img1.jpg set/masks/img1.png\n"
    )
    assert [pair[0].name for pair in read_pair_list(tmp_path / "train.txt")] == ["img0.jpg", "img1.jpg"]


@pytest.mark.parametrize("seed", range(6))
def test_mask_stays_aligned_with_the_image_under_augmentation(seed):
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[:20, :24], mask[30:, 40:], mask[5:15, 50:60] = 1, 2, 3  # asymmetric: a wrong flip would show
    image = Image.fromarray(CLASS_COLOURS[mask])
    transform = segmentation_transform((40, 40), train=True, ignore_index=255, scale_range=(0.6, 1.8))
    torch.manual_seed(seed)
    image_out, mask_out = apply_transform(transform, image, mask)
    assert image_out.shape == (3, 40, 40) and mask_out.shape == (40, 40)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    pixels = ((image_out * std + mean) * 255).permute(1, 2, 0)  # (H, W, 3)
    distances = (pixels[:, :, None, :] - torch.tensor(CLASS_COLOURS, dtype=torch.float32)).norm(dim=-1)
    colour_class = distances.argmin(-1)  # (H, W): the class whose colour each pixel has
    labelled = mask_out != 255
    assert set(mask_out.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest sampling: no blended labels
    agreement = (colour_class[labelled] == mask_out[labelled]).float().mean()
    assert agreement > 0.95  # only pixels on object borders blur


def test_padding_gets_the_ignore_index():
    transform = segmentation_transform((32, 32), train=True, ignore_index=7, scale_range=None, hflip=False)
    _, mask_out = apply_transform(transform, Image.new("RGB", (20, 16)), np.zeros((16, 20), dtype=np.uint8))
    assert (mask_out == 7).sum() == 32 * 32 - 20 * 16 and (mask_out == 0).sum() == 20 * 16


def test_class_pixel_counts_of_the_raw_masks(tmp_path):
    _write_voc_folder(tmp_path / "train", count=2, size=(4, 2))  # each: 2 columns bg, 1 ignored, 1 of class 1|2
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a", "b"])
    class_pixels, image_pixels = class_pixel_counts(data.build_dataset("train", "train"), 3)
    assert class_pixels.tolist() == [8, 2, 2]  # ignored pixels count nowhere
    assert image_pixels.tolist() == [12, 6, 6]  # labelled pixels of the images holding the class


def test_bad_label_values_name_the_mask(tmp_path):
    _write_voc_folder(tmp_path / "train", count=2)  # img1's objects are class 2
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a"])
    with pytest.raises(ValueError, match=r"img1\.png: label value 2 is neither a class index \(0\.\.1\)"):
        data.build_dataset("train", "train")[1]


def test_mask_and_image_of_different_sizes_are_reported(tmp_path):
    _write_voc_folder(tmp_path / "train", count=1)
    Image.new("RGB", (10, 10)).save(tmp_path / "train" / "images" / "img0.jpg")
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a", "b"])
    with pytest.raises(ValueError, match=r"img0\.png: mask is 24x20 but image .*img0\.jpg is 10x10"):
        data.build_dataset("train", "train")[0]


def test_corrupt_image_and_rgb_mask_are_reported_with_their_file(tmp_path):
    _write_voc_folder(tmp_path / "train", count=2)
    (tmp_path / "train" / "images" / "img0.jpg").write_bytes(b"\xff\xd8 broken")
    Image.new("RGB", (24, 20)).save(tmp_path / "train" / "masks" / "img1.png")
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg", "a", "b"])
    with pytest.raises(ImageLoadError, match=r"img0\.jpg: "):
        data.build_dataset("train", "train")[0]
    with pytest.raises(ImageLoadError, match=r"img1\.png: a mask must be a single-channel .* got mode RGB"):
        data.build_dataset("train", "train")[1]


def test_missing_files_and_bad_lines_are_reported(tmp_path):
    _write_voc_folder(tmp_path / "train", count=1)
    (tmp_path / "train" / "masks" / "img0.png").unlink()
    data = SegmentationDataModule(format="folders", root=str(tmp_path), class_names=["bg"])
    with pytest.raises(FileNotFoundError, match=r"img0\.jpg: no mask .*img0\.png"):
        data.build_dataset("train", "train")
    (tmp_path / "bad.txt").write_text("only_one_field.jpg\n")
    with pytest.raises(ValueError, match=r"bad\.txt line 1: expected 'IMAGE LABEL'"):
        read_pair_list(tmp_path / "bad.txt")
    (tmp_path / "gone.txt").write_text("train/images/img0.jpg nowhere.png\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.txt line 1: file not found: .*nowhere\.png"):
        read_pair_list(tmp_path / "gone.txt")


def test_bad_config_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown segmentation data format 'voc'"):
        SegmentationDataModule(format="voc")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        SegmentationDataModule(format="list", root=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"classes\.txt: not found"):
        SegmentationDataModule(format="list", root=str(tmp_path))
    with pytest.raises(ValueError, match="palette must hold 5"):
        SegmentationDataModule(palette=[[0, 0, 0]])


def test_voc_palette_matches_pascal_voc():
    assert voc_palette(5) == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
