"""Captioning data: embedded procedural scenes, Flickr8k, COCO captions JSON and JSONL; several references per image.

Formats (``CaptioningDataModule(format=...)``), each split named by ``train_split`` / ``val_split`` / ``test_split``:
    shapes: procedural scenes (``data.shapes.ShapeScenes``), no files; captions such as "a small red circle
        left of a large blue square", with every correct wording as a reference.
    flickr8k: token files of ``image.jpg#k<TAB>caption`` lines (``Flickr8k.token.txt``, or one per split as
        ``Flickr8k.token.train.txt``; all ``Flickr8k.token*.txt`` under ``root`` by default); a split is a
        list file of image names (``Flickr_8k.trainImages.txt``); images under ``root/<image_dir>``.
    coco: a split is a name such as ``val2017``: ``root/annotations/captions_<split>.json`` (the official
        COCO captions format) with images in ``root/<split>/``.
    jsonl: a split is a file under ``root`` with one ``{"image": path, "captions": [...]}`` a line; image
        paths are relative to that file's folder (or absolute).

Each example is ``{"inputs": (3, H, W) float, "target": str, "references": list[str], "id": str}`` (the
image file, or ``shapes-<split>-<index>``); training examples
take one reference at random each time (so every reference is learned) or, with ``train_caption="first"``,
the first; evaluation examples the first.
``data.text_batches.TextTargetCollator`` makes the batches.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from multimodal_s2s.checkpoint import CheckpointHeader, ImagePreprocessing, Task
from multimodal_s2s.data.base import SuiteDataModule, check_loader_options, warn_unknown_tokens
from multimodal_s2s.data.loaders import evaluation_loader, training_loader
from multimodal_s2s.data.shapes import COLOURS, SHAPE_KINDS, SIZES, SceneObject, ShapeScenes, describe
from multimodal_s2s.data.text_batches import TextTargetCollator
from multimodal_s2s.preprocessing.caption_transforms import caption_transform
from multimodal_s2s.preprocessing.images import IMAGENET_MEAN, IMAGENET_STD, load_image
from multimodal_s2s.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer

FORMATS = ("shapes", "flickr8k", "coco", "jsonl")
TOKENIZERS = ("word", "char", "bpe")
#: How a training example picks its target among the image's references (see ``CaptioningDataModule``).
TRAIN_CAPTIONS = ("random", "first")
#: Format -> (train split, val split) used when none is given.
DEFAULT_SPLITS = {
    "shapes": ("train", "val"),
    "flickr8k": ("Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt"),
    "coco": ("train2017", "val2017"),
    "jsonl": ("train.jsonl", "val.jsonl"),
}
FLICKR8K_TOKEN_GLOB = "Flickr8k.token*.txt"
#: Split name -> seed offset of the shapes scenes, so that train, val and test never share a scene.
SHAPES_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class CaptionedImage:
    path: Path
    captions: tuple[str, ...]


def shapes_caption_corpus() -> list[str]:
    """Captions that hold every word of the scene grammar: each single object, and a pair side by side
    and one above the other (both wordings each)."""
    singles = [SceneObject(k, c, s, (0.5, 0.5)) for k in SHAPE_KINDS for c in COLOURS for s in SIZES]
    corpus = [caption for obj in singles for caption in describe([obj])]
    first, second = singles[0], singles[-1]
    for centre in ((1.0, 0.5), (0.5, 1.0)):  # beside, below
        corpus += describe([first, replace(second, centre=centre)])
    return corpus


def read_flickr8k(
    root: Path, split_file: str, captions_files: Sequence[str] | None, image_dir: str
) -> list[CaptionedImage]:
    """The images listed in ``root/split_file`` with their captions from the token files."""
    token_files = [root / name for name in captions_files] if captions_files else sorted(root.glob(FLICKR8K_TOKEN_GLOB))
    if not token_files:
        raise FileNotFoundError(f"{root}: no caption token files ({FLICKR8K_TOKEN_GLOB}); give data.captions_files")
    captions: dict[str, list[str]] = defaultdict(list)
    for token_file in token_files:
        for number, line in enumerate(_read_text(token_file).splitlines(), start=1):
            if not line.strip():
                continue
            key, tab, caption = line.partition("\t")
            if not tab or "#" not in key:
                raise ValueError(f"{token_file} line {number}: expected 'IMAGE.jpg#k<TAB>caption', got {line[:80]!r}")
            captions[key.rsplit("#", 1)[0]].append(caption.strip())
    split_path = root / split_file
    names = [line.strip() for line in _read_text(split_path).splitlines() if line.strip()]
    uncaptioned = [name for name in names if name not in captions]
    if uncaptioned:
        raise ValueError(
            f"{split_path}: {len(uncaptioned)} image(s) have no caption in the token files, e.g. {uncaptioned[0]}"
        )
    return _checked([CaptionedImage(root / image_dir / n, tuple(captions[n])) for n in names], split_path)


def read_coco(annotations_file: Path, image_dir: Path) -> list[CaptionedImage]:
    """COCO captions JSON (``images`` with ``id`` and ``file_name``; ``annotations`` with ``image_id`` and
    ``caption``) -> the captioned images, in the file's image order."""
    try:
        data = json.loads(_read_text(annotations_file))
        file_names = {image["id"]: image["file_name"] for image in data["images"]}
        captions: dict[int, list[str]] = defaultdict(list)
        for annotation in data["annotations"]:
            captions[annotation["image_id"]].append(annotation["caption"].strip())
    except json.JSONDecodeError as error:
        raise ValueError(f"{annotations_file}: not valid JSON ({error})") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{annotations_file}: not a COCO captions file (missing or malformed {error})") from None
    items = [CaptionedImage(image_dir / name, tuple(captions[i])) for i, name in file_names.items() if captions[i]]
    return _checked(items, annotations_file)


def read_jsonl(path: Path) -> list[CaptionedImage]:
    """One ``{"image": path, "captions": [str, ...]}`` a line; relative image paths from ``path``'s folder."""
    items = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} line {number}: not valid JSON ({error.msg})") from None
        captions = record.get("captions") if isinstance(record, dict) else None
        image = record.get("image") if isinstance(record, dict) else None
        if not isinstance(image, str) or not isinstance(captions, list) or not captions:
            raise ValueError(f'{path} line {number}: expected {{"image": "path", "captions": ["...", ...]}}')
        if not all(isinstance(caption, str) for caption in captions):
            raise ValueError(f"{path} line {number}: every caption must be a string")
        items.append(CaptionedImage(path.parent / image, tuple(c.strip() for c in captions)))
    return _checked(items, path)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _checked(items: list[CaptionedImage], origin: Path) -> list[CaptionedImage]:
    """Every image file must exist, and there must be some."""
    if not items:
        raise ValueError(f"{origin}: no captioned images")
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        raise FileNotFoundError(f"{origin}: {len(missing)} of {len(items)} image files not found, e.g. {missing[0]}")
    return items


def _example(image, captions: Sequence[str], transform: Callable, sample_caption: bool, name: str) -> dict[str, Any]:
    """PIL image and its captions -> {"inputs": (3, H, W), "target", "references", "id"}; the target is a
    reference drawn at random when ``sample_caption``, else the first."""
    choice = int(torch.randint(len(captions), ())) if sample_caption else 0
    inputs = transform(TF.to_image(image))
    return {"inputs": inputs, "target": captions[choice], "references": list(captions), "id": name}


class CaptionedImageFiles(Dataset):
    """Image files with their captions (``load_image``: any mode to RGB, very large ones shrunk on load)."""

    def __init__(self, items: list[CaptionedImage], transform: Callable, sample_caption: bool):
        self.items, self.transform, self.sample_caption = items, transform, sample_caption

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return _example(load_image(item.path), item.captions, self.transform, self.sample_caption, str(item.path))


class ShapeCaptions(Dataset):
    """``size`` procedural scenes (seeded), rendered on demand."""

    def __init__(self, split: str, size: int, seed: int, image_size: int, max_objects: int, transform, sample_caption):
        self.scenes = ShapeScenes(seed=seed, image_size=image_size, max_objects=max_objects)
        self.split, self.size, self.transform, self.sample_caption = split, size, transform, sample_caption

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scenes[index]
        name = f"shapes-{self.split}-{index:05d}"
        return _example(scene.image, scene.captions, self.transform, self.sample_caption, name)


def train_caption_tokenizer(kind: str, corpus: list[str], min_frequency: int, vocab_size: int) -> Tokenizer:
    """A lower-cased "word" tokenizer (at most ``vocab_size`` ids), a "char" one, or byte-level "bpe"."""
    if kind == "word":
        return WordTokenizer.train(corpus, min_frequency=min_frequency, max_vocab_size=vocab_size, lowercase=True)
    if kind == "char":
        return CharTokenizer.train(corpus, min_frequency=min_frequency)
    if kind == "bpe":
        return BPETokenizer.train(corpus, vocab_size=vocab_size, min_frequency=min_frequency)
    raise ValueError(f"unknown tokenizer {kind!r}; choose from {', '.join(TOKENIZERS)}")


class CaptioningDataModule(SuiteDataModule):
    """Train / val / test loaders of one format (see the module docstring), with a tokenizer learned
    from the training captions.

    Args:
        format: "shapes", "flickr8k", "coco" or "jsonl".
        root: dataset folder (every format but shapes).
        train_split, val_split, test_split: split names (see the module docstring); None for train and
            val: the format's usual names (``DEFAULT_SPLITS``); test_split None: no test set.
        captions_files: flickr8k token files under ``root`` (default: all ``Flickr8k.token*.txt``).
        image_dir: flickr8k image folder under ``root``.
        image_size: [H, W] the images are resized to.
        crop_scale: training random resized crop, the share of the area kept (None: no crop, only resize).
        color_jitter: training brightness/contrast/saturation jitter strength (0: none).
        hflip: random horizontal flips in training (they swap "left" and "right" in the captions).
        mean, std: image normalization (ImageNet statistics by default, as timm backbones expect).
        num_workers: data-loader workers; None: sized from the cores (``threads.default_num_workers``).
        tokenizer: "word" (lower-cased words), "char" or "bpe".
        min_frequency: a word (character, BPE pair) must occur this often in the training captions.
        vocab_size: most ids of a word or BPE vocabulary.
        max_caption_tokens: longer training targets are cut to this many tokens.
        train_caption: a training example's target: "random", a reference drawn at random each time (every
            wording is learned; for independent human captions), or "first", always the first reference (one
            canonical wording: the shapes scenes' first caption names the upper or left object first, so the
            decoder learns one order and the relation word follows from the axis alone).
        shapes_train_size, shapes_val_size, shapes_seed, shapes_max_objects, shapes_image_size: the scenes.

    A run that starts from a checkpoint uses its tokenizer and image preprocessing (``use_header``).
    """

    task = Task.CAPTIONING

    def __init__(
        self,
        format: str = "shapes",
        root: str | None = None,
        train_split: str | None = None,
        val_split: str | None = None,
        test_split: str | None = None,
        captions_files: list[str] | None = None,
        image_dir: str = "images",
        image_size: tuple[int, int] = (64, 64),
        crop_scale: tuple[float, float] | None = None,
        color_jitter: float = 0.0,
        hflip: bool = False,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        tokenizer: str = "word",
        min_frequency: int = 1,
        vocab_size: int = 10000,
        max_caption_tokens: int = 40,
        train_caption: str = "random",
        batch_size: int = 32,
        num_workers: int | None = None,
        shapes_train_size: int = 20000,
        shapes_val_size: int = 300,
        shapes_seed: int = 0,
        shapes_max_objects: int = 2,
        shapes_image_size: int = 64,
    ):
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown captioning data format {format!r}; choose from {', '.join(FORMATS)}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
        if train_caption not in TRAIN_CAPTIONS:
            raise ValueError(f"unknown train_caption {train_caption!r}; choose from {', '.join(TRAIN_CAPTIONS)}")
        if format != "shapes" and (root is None or not Path(root).is_dir()):
            raise FileNotFoundError(f"{root}: dataset folder not found (format {format!r} needs root)")
        check_loader_options(batch_size, num_workers)
        self.save_hyperparameters()
        default_train, default_val = DEFAULT_SPLITS[format]
        self.splits = {"train": train_split or default_train, "val": val_split or default_val, "test": test_split}
        self.datasets: dict[str, Dataset] = {}
        self.tokenizer: Tokenizer | None = None
        self.preprocessing = ImagePreprocessing(tuple(image_size), tuple(mean), tuple(std))

    def use_header(self, header: CheckpointHeader) -> None:
        """The checkpoint's tokenizer and image preprocessing replace the ones the options would give."""
        super().use_header(header)
        if header.preprocessing != self.preprocessing:
            warnings.warn(f"the checkpoint's image preprocessing {header.preprocessing} is used, not the options'",
                          stacklevel=2)
            self.datasets.clear()  # built with the options' preprocessing: built again when asked for
        self.tokenizer, self.preprocessing = header.tokenizer, header.preprocessing

    def setup(self, stage: str | None = None) -> None:
        self.adopt_run_checkpoint()
        for split in self.splits:
            if self.has_split(split):
                self.dataset(split)
        if self.tokenizer is None:
            hp = self.hparams
            self.tokenizer = train_caption_tokenizer(
                hp.tokenizer, self.training_captions(), hp.min_frequency, hp.vocab_size
            )
        elif self.header is not None:
            for split in ("val", "test"):
                if self.has_split(split):
                    warn_unknown_tokens(self.tokenizer, self._references(split), f"{split} split")

    def has_split(self, split: str) -> bool:
        return self.splits[split] is not None or self.hparams.format == "shapes"

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built on first use."""
        if split not in self.datasets:
            self.datasets[split] = self.build_dataset(split, self.splits[split])
        return self.datasets[split]

    def _references(self, split: str) -> list[str]:
        """Every reference caption of ``split``."""
        dataset = self.dataset(split)
        if isinstance(dataset, ShapeCaptions):
            return [caption for i in range(len(dataset)) for caption in dataset.scenes[i].captions]
        return [caption for item in dataset.items for caption in item.captions]

    def training_captions(self) -> list[str]:
        """Every reference of the training split (the tokenizer's corpus)."""
        if self.hparams.format == "shapes":
            return shapes_caption_corpus()
        return [caption for item in self.dataset("train").items for caption in item.captions]

    def build_dataset(self, split: str, name: str | None) -> Dataset:
        """The dataset of ``split`` ("train", "val" or "test"), ``name`` being its split name."""
        hp, prep = self.hparams, self.preprocessing
        train = split == "train"
        sample_caption = train and hp.train_caption == "random"
        transform = caption_transform(prep.image_size, train, hp.crop_scale, hp.color_jitter, hp.hflip, prep.mean,
                                      prep.std)
        if hp.format == "shapes":
            size = hp.shapes_train_size if train else hp.shapes_val_size
            seed = hp.shapes_seed + SHAPES_SPLIT_SEEDS[split]
            objects = hp.shapes_max_objects
            return ShapeCaptions(split, size, seed, hp.shapes_image_size, objects, transform, sample_caption)
        root = Path(hp.root)
        if hp.format == "flickr8k":
            items = read_flickr8k(root, name, hp.captions_files, hp.image_dir)
        elif hp.format == "coco":
            items = read_coco(root / "annotations" / f"captions_{name}.json", root / name)
        else:
            items = read_jsonl(root / name)
        return CaptionedImageFiles(items, transform, sample_caption)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return training_loader(self.dataset("train"), hp.batch_size, hp.num_workers, self._collator())

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        if not self.has_split("test"):
            raise ValueError("no test set: give data.test_split")
        return self.evaluation_loader("test")

    def evaluation_loader(self, split: str) -> DataLoader:
        hp = self.hparams
        return evaluation_loader(self.dataset(split), hp.batch_size, hp.num_workers, self._collator())

    def _collator(self) -> TextTargetCollator:
        return TextTargetCollator(self.tokenizer, self.hparams.max_caption_tokens)
