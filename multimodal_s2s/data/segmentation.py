"""Segmentation data: embedded procedural scenes, CamVid-style list files, palette masks, folder pairs.

Formats (``SegmentationDataModule(format=...)``):
    shapes: procedural scenes (``data.shapes.ShapeScenes``), no files; classes background + 4 shapes.
    list: list files of ``image label`` pairs, paths relative to ``root`` (CamVid as SegNet uses it:
        ``train.txt`` / ``val.txt``; label PNGs whose pixel values are class indices; void = 11).
    folders: ``root/<split>/images/NAME.*`` with ``root/<split>/masks/NAME.png``.
Masks are single-channel PNGs: grayscale ('L', the value is the class) or palette ('P', Pascal VOC
style: the palette index is the class, 255 = ignore). Class names come from ``class_names`` or a
``classes.txt`` (one name a line, index order) in ``root``.

Batches are dicts: ``images`` float (B, 3, H, W) normalized, ``masks`` long (B, H, W).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from multimodal_s2s.checkpoint import CheckpointHeader, ImagePreprocessing, LabelSet, Task
from multimodal_s2s.data.base import SuiteDataModule, check_loader_options
from multimodal_s2s.data.loaders import evaluation_loader, training_loader
from multimodal_s2s.data.shapes import CLASS_NAMES as SHAPE_CLASS_NAMES
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.preprocessing.files import IMAGE_SUFFIXES, find_files
from multimodal_s2s.preprocessing.images import IMAGENET_MEAN, IMAGENET_STD, ImageLoadError, load_image
from multimodal_s2s.preprocessing.segmentation_transforms import (
    DEFAULT_SCALE_RANGE,
    apply_transform,
    segmentation_transform,
)

FORMATS = ("shapes", "list", "folders")
DEFAULT_IGNORE_INDEX = 255  # Pascal VOC's "void / boundary" palette index
CLASSES_FILE = "classes.txt"
MASK_MODES = ("L", "P", "1", "I", "I;16")
#: Split name -> seed offset of the shapes scenes, so that train, val and test never share a scene.
SHAPES_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
BITS_PER_BYTE = 8
#: The splits each Lightning stage reads.
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask PNG -> (H, W) int64 class indices (palette masks: the palette index), one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: mask file not found")
    try:
        with Image.open(path) as mask:
            if mask.mode not in MASK_MODES:
                raise ImageLoadError(
                    f"{path}: a mask must be a single-channel class-index or palette image, got mode {mask.mode}"
                )
            return np.asarray(mask, dtype=np.int64)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file (unknown or unsupported format)") from None
    except (OSError, SyntaxError) as error:
        raise ImageLoadError(f"{path}: corrupt or unreadable mask ({str(error).strip()[:200]})") from None


def voc_palette(num_classes: int) -> list[list[int]]:
    """Pascal VOC's colour map: class k's RGB comes from interleaving the bits of k."""
    palette = []
    for index in range(num_classes):
        red = green = blue = 0
        value = index
        for shift in reversed(range(BITS_PER_BYTE)):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette.append([red, green, blue])
    return palette


class ShapesSegmentation(Dataset):
    """``size`` procedural scenes (seeded) with their masks; classes ``data.shapes.CLASS_NAMES``."""

    def __init__(self, split: str, size: int, seed: int, image_size: int, transform, max_objects: int = 2):
        self.scenes = ShapeScenes(seed=seed, image_size=image_size, max_objects=max_objects)
        self.split, self.size, self.transform = split, size, transform

    def __len__(self) -> int:
        return self.size

    def mask_at(self, index: int) -> np.ndarray:
        return self.scenes[index].mask

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        scene = self.scenes[index]
        image, mask = apply_transform(self.transform, scene.image, scene.mask)
        return {"images": image, "masks": mask, "ids": f"shapes-{self.split}-{index:05d}"}


class MaskedImages(Dataset):
    """(image file, mask file) pairs; each mask is checked against its image and the class count."""

    def __init__(
        self, pairs: Sequence[tuple[Path, Path]], num_classes: int, ignore_index: int, transform,
        native_masks: bool = False,
    ):
        """``native_masks``: masks keep their files' size (H0, W0) while the images are transformed."""
        if not pairs:
            raise ValueError("no (image, mask) pairs found")
        self.pairs, self.num_classes, self.ignore_index = list(pairs), num_classes, ignore_index
        self.transform, self.native_masks = transform, native_masks

    def __len__(self) -> int:
        return len(self.pairs)

    def mask_at(self, index: int) -> np.ndarray:
        mask_path = self.pairs[index][1]
        mask = load_mask(mask_path)
        invalid = ((mask >= self.num_classes) & (mask != self.ignore_index)) | (mask < 0)
        if invalid.any():
            raise ValueError(
                f"{mask_path}: label value {int(mask[invalid][0])} is neither a class index "
                f"(0..{self.num_classes - 1}) nor the ignore index {self.ignore_index}"
            )
        return mask

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        image_path, mask_path = self.pairs[index]
        mask = self.mask_at(index)
        image = load_image(image_path, max_side=None)  # full size: the mask is
        if image.size[::-1] != mask.shape:
            raise ValueError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.size[0]}x{image.size[1]}"
            )
        image_tensor, mask_tensor = apply_transform(self.transform, image, mask)
        if self.native_masks:
            mask_tensor = torch.from_numpy(mask.astype(np.int64))
        return {"images": image_tensor, "masks": mask_tensor, "ids": str(image_path)}


def native_size_collate(examples: list[dict[str, Any]], ignore_index: int) -> dict[str, Any]:
    """Examples whose masks keep their own sizes -> a batch: ``images`` (B, 3, H, W) stacked, ``masks``
    (B, H0max, W0max) padded with ``ignore_index``, ``mask_sizes`` long (B, 2) each mask's (H0, W0), ``ids``."""
    masks = [example["masks"] for example in examples]
    sizes = torch.tensor([mask.shape for mask in masks], dtype=torch.long)
    padded = torch.full((len(masks), *sizes.max(0).values.tolist()), ignore_index, dtype=torch.long)
    for row, mask in zip(padded, masks, strict=True):
        row[: mask.shape[0], : mask.shape[1]] = mask
    images = torch.stack([example["images"] for example in examples])
    return {"images": images, "masks": padded, "mask_sizes": sizes, "ids": [example["ids"] for example in examples]}


def read_pair_list(list_file: Path) -> list[tuple[Path, Path]]:
    """A list file of ``image label`` lines (paths relative to its folder) -> pairs; every file must exist."""
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: list file not found")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{list_file} line {number}: expected 'IMAGE LABEL', got {line.strip()!r}")
        image, label = (list_file.parent / field for field in fields)
        for path in (image, label):
            if not path.is_file():
                raise FileNotFoundError(f"{list_file} line {number}: file not found: {path}")
        pairs.append((image, label))
    return pairs


def find_folder_pairs(split_dir: Path) -> list[tuple[Path, Path]]:
    """``split_dir/images/NAME.*`` with ``split_dir/masks/NAME.png``; a missing mask is an error."""
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found (expected images/ and masks/ in {split_dir})")
    pairs = []
    for image in find_files(images_dir, IMAGE_SUFFIXES):
        mask = masks_dir / f"{image.stem}.png"
        if not mask.is_file():
            raise FileNotFoundError(f"{image}: no mask {mask}")
        pairs.append((image, mask))
    return pairs


def class_pixel_counts(dataset: Dataset, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Over the raw masks of ``dataset`` (no augmentation): pixels of each class (C,), and pixels of
    the images in which each class appears (C,), as median-frequency balancing needs."""
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    for index in range(len(dataset)):
        mask = dataset.mask_at(index)
        valid = mask[mask < num_classes]
        counts = np.bincount(valid, minlength=num_classes)[:num_classes]
        class_pixels += counts
        image_pixels += (counts > 0) * valid.size
    return class_pixels, image_pixels


class SegmentationDataModule(SuiteDataModule):
    """Train / val / test loaders of one format (see the module docstring), with joint augmentation.

    Args:
        format: "shapes", "list" or "folders".
        root: dataset folder (list and folders formats).
        train_split, val_split, test_split: list files (list) or sub-folders (folders) under ``root``;
            test_split None: no test set.
        class_names: names in index order; default ``root/classes.txt`` (shapes: its own classes).
        palette: one [R, G, B] per class for label PNGs and overlays; default Pascal VOC's colour map.
        ignore_index: mask value that is not a class (255 for VOC-style masks; 11 = void for CamVid).
        image_size: [H, W] of training crops and of evaluation images.
        native_size_scoring: val and test masks keep their files' size and the model's logits are resized
            (bilinear) to each before the loss and the metrics, as published figures are scored (CamVid at
            360x480) whatever size the model sees; False: masks are resized with the images (nearest).
        augment: random scale (``scale_range``; None: none), crop and horizontal flip (``hflip``) of training pairs.
        mean, std: image normalization (ImageNet statistics by default).
        num_workers: data-loader workers; None: sized from the cores (``threads.default_num_workers``).
        shapes_train_size, shapes_val_size, shapes_seed, shapes_max_objects: the procedural scenes.

    A run that starts from a checkpoint reads the labels with the checkpoint's classes and prepares the
    images with its preprocessing (``use_header``).
    """

    task = Task.SEGMENTATION

    def __init__(
        self,
        format: str = "shapes",
        root: str | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = None,
        class_names: list[str] | None = None,
        palette: list[list[int]] | None = None,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        image_size: tuple[int, int] = (64, 64),
        native_size_scoring: bool = False,
        augment: bool = True,
        scale_range: tuple[float, float] | None = DEFAULT_SCALE_RANGE,
        hflip: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        batch_size: int = 16,
        num_workers: int | None = None,
        shapes_train_size: int = 2000,
        shapes_val_size: int = 200,
        shapes_seed: int = 0,
        shapes_max_objects: int = 2,
    ):
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown segmentation data format {format!r}; choose from {', '.join(FORMATS)}")
        if format != "shapes" and (root is None or not Path(root).is_dir()):
            raise FileNotFoundError(f"{root}: dataset folder not found (format {format!r} needs root)")
        if native_size_scoring and format == "shapes":
            raise ValueError("data.native_size_scoring scores masks read from files; shapes scenes are made at "
                             "image_size")
        check_loader_options(batch_size, num_workers)
        self.save_hyperparameters()
        names = self._resolve_class_names(class_names)
        self.labels = LabelSet(tuple(names), tuple(map(tuple, _checked_palette(palette, len(names)))), ignore_index)
        self.preprocessing = ImagePreprocessing(tuple(image_size), tuple(mean), tuple(std))
        self.datasets: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.labels.class_names)

    def use_header(self, header: CheckpointHeader) -> None:
        """The checkpoint's classes (names, palette, ignore index) and preprocessing replace the options'."""
        super().use_header(header)
        if header.labels.class_names != self.labels.class_names:
            ours, theirs = self.labels.class_names, header.labels.class_names
            missing = [name for name in ours if name not in theirs]
            warnings.warn(
                f"the data names {len(ours)} classes, the checkpoint {len(theirs)}: labels are read as the "
                f"checkpoint's classes ({', '.join(theirs)})"
                + (f"; {len(missing)} of the data's are unknown to it: {', '.join(missing)}" if missing else ""),
                stacklevel=2,
            )
        self.labels = replace(header.labels, class_weights=None)
        self.preprocessing = header.preprocessing
        self.datasets.clear()  # built with the options' classes and preprocessing: built again when asked for

    def setup(self, stage: str | None = None) -> None:
        """Builds the datasets that ``stage`` (fit, validate, test, predict; None: all) reads, once each."""
        self.adopt_run_checkpoint()
        splits = (self.predict_split,) if stage == "predict" else STAGE_SPLITS.get(stage, ("train", "val", "test"))
        for split in splits:
            if self.has_split(split):
                self.dataset(split)

    def has_split(self, split: str) -> bool:
        return self._split_name(split) is not None or self.hparams.format == "shapes"

    def _split_name(self, split: str) -> str | None:
        hp = self.hparams
        return {"train": hp.train_split, "val": hp.val_split, "test": hp.test_split}[split]

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built on first use."""
        if split not in self.datasets:
            self.datasets[split] = self.build_dataset(split, self._split_name(split))
        return self.datasets[split]

    def build_dataset(self, split: str, name: str | None) -> Dataset:
        """The dataset of ``split`` ("train", "val" or "test"), ``name`` being its list file or folder."""
        hp, prep, ignore_index = self.hparams, self.preprocessing, self.labels.ignore_index
        transform = segmentation_transform(
            prep.image_size, train=split == "train" and hp.augment, ignore_index=ignore_index,
            scale_range=hp.scale_range, hflip=hp.hflip, mean=prep.mean, std=prep.std,
        )
        if hp.format == "shapes":
            size = hp.shapes_train_size if split == "train" else hp.shapes_val_size
            seed = hp.shapes_seed + SHAPES_SPLIT_SEEDS[split]
            return ShapesSegmentation(split, size, seed, max(prep.image_size), transform, hp.shapes_max_objects)
        root = Path(hp.root)
        pairs = read_pair_list(root / name) if hp.format == "list" else find_folder_pairs(root / name)
        native = split != "train" and hp.native_size_scoring
        return MaskedImages(pairs, self.num_classes, ignore_index, transform, native_masks=native)

    def train_dataloader(self) -> DataLoader:
        return training_loader(self.dataset("train"), self.hparams.batch_size, self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        if not self.has_split("test"):
            raise ValueError("no test set: give data.test_split (a list file or folder under root)")
        return self.evaluation_loader("test")

    def evaluation_loader(self, split: str) -> DataLoader:
        collate = None
        if self.hparams.native_size_scoring:
            collate = functools.partial(native_size_collate, ignore_index=self.labels.ignore_index)
        return evaluation_loader(self.dataset(split), self.hparams.batch_size, self.hparams.num_workers, collate)

    def class_pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Class pixel counts of the training masks, see ``class_pixel_counts``."""
        return class_pixel_counts(self.dataset("train"), self.num_classes)

    def _resolve_class_names(self, class_names: list[str] | None) -> list[str]:
        if class_names:
            return list(class_names)
        if self.hparams.format == "shapes":
            return list(SHAPE_CLASS_NAMES)
        classes_file = Path(self.hparams.root) / CLASSES_FILE
        if not classes_file.is_file():
            raise FileNotFoundError(f"{classes_file}: not found; give data.class_names or write this file")
        return [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]


def _checked_palette(palette: list[list[int]] | None, num_classes: int) -> list[list[int]]:
    if palette is None:
        return voc_palette(num_classes)
    colours = [list(colour) for colour in palette]
    if len(colours) < num_classes or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colours):
        raise ValueError(f"palette must hold {num_classes} [R, G, B] colours with values 0..255, got {palette}")
    return colours[:num_classes]
