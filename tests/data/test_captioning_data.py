"""Captioning data: every format loads (real files from ../shared/data where present, small generated
files always), batches are what Seq2SeqModule reads, and bad data gets a clear error."""

from __future__ import annotations

import pytest
import torch
from captioning_fixtures import write_coco, write_flickr8k, write_image, write_jsonl
from conftest import shared_data
from PIL import Image

from multimodal_s2s.data.captioning import (
    CaptioningDataModule,
    read_coco,
    read_flickr8k,
    read_jsonl,
    shapes_caption_corpus,
)
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.data.text_batches import TextTargetCollator, encode_target
from multimodal_s2s.preprocessing.caption_transforms import caption_transform
from multimodal_s2s.preprocessing.tokens import pad_token_ids
from multimodal_s2s.tokenizers import WordTokenizer
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID, UNK_ID


def _first_batch(data: CaptioningDataModule, loader: str = "train_dataloader") -> dict:
    data.setup("fit")
    return next(iter(getattr(data, loader)()))


def test_shapes_batches_have_images_targets_and_every_reference():
    data = CaptioningDataModule(format="shapes", batch_size=4, shapes_train_size=8, shapes_val_size=4)
    batch = _first_batch(data, "val_dataloader")
    assert batch["inputs"].shape == (4, 3, 64, 64) and batch["inputs"].dtype == torch.float32
    assert batch["lengths"] is None
    tokens = batch["tokens"]
    assert (tokens[:, 0] == BOS_ID).all()
    for row, references in zip(tokens, batch["references"], strict=True):
        ids = row[row != PAD_ID].tolist()
        assert ids[-1] == EOS_ID
        assert data.tokenizer.decode(ids) == references[0]  # evaluation targets the first reference
    scenes = ShapeScenes(seed=1)
    assert batch["references"] == [scenes[i].captions for i in range(4)]


def test_shapes_vocabulary_covers_every_caption_without_rendering_the_training_set():
    tokenizer = WordTokenizer.train(shapes_caption_corpus())
    scenes = ShapeScenes(seed=5)
    relations = set()
    for index in range(300):
        for caption in scenes[index].captions:
            assert UNK_ID not in tokenizer.encode(caption), caption
            relations.update(word for word in ("left", "right", "above", "below") if word in caption.split())
    assert relations == {"left", "right", "above", "below"}


def test_training_examples_draw_every_reference():
    data = CaptioningDataModule(format="shapes", shapes_train_size=64)
    data.setup("fit")
    dataset = data.datasets["train"]
    two_object = next(i for i in range(64) if len(dataset.scenes[i].captions) == 2)
    targets = {dataset[two_object]["target"] for _ in range(20)}
    assert targets == set(dataset.scenes[two_object].captions)


def test_first_caption_training_learns_one_canonical_wording():
    data = CaptioningDataModule(format="shapes", shapes_train_size=64, train_caption="first")
    data.setup("fit")
    dataset = data.datasets["train"]
    two_object = [i for i in range(64) if len(dataset.scenes[i].captions) == 2]
    for index in two_object:
        first = dataset.scenes[index].captions[0]
        assert {dataset[index]["target"] for _ in range(5)} == {first}
        assert (" above " in first) != (" left of " in first), first  # the upper or left object comes first
    with pytest.raises(ValueError, match="unknown train_caption 'longest'; choose from random, first"):
        CaptioningDataModule(format="shapes", train_caption="longest")


def test_flickr8k_generated_fixture(tmp_path):
    root = write_flickr8k(tmp_path / "f8k", {"train": ["a.jpg", "b.jpg", "c.jpg"], "dev": ["d.jpg"]})
    data = CaptioningDataModule(format="flickr8k", root=str(root), image_size=(32, 32), batch_size=2)
    batch = _first_batch(data)
    assert batch["inputs"].shape == (2, 3, 32, 32)
    assert len(data.datasets["train"]) == 3 and len(data.datasets["val"]) == 1
    assert all(len(refs) == 3 for refs in batch["references"])
    assert data.tokenizer.decode(data.tokenizer.encode("A picture")) == "a picture"  # lower-cased words


def test_flickr8k_errors_name_the_file_and_line(tmp_path):
    root = write_flickr8k(tmp_path / "f8k", {"train": ["a.jpg", "b.jpg"]})
    (root / "images" / "b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 image files not found, e.g. .*b\.jpg"):
        read_flickr8k(root, "Flickr_8k.trainImages.txt", None, "images")
    (root / "Flickr8k.token.train.txt").write_text("a.jpg#0\tfine\nno tab here\n")
    with pytest.raises(ValueError, match=r"Flickr8k.token.train.txt line 2: expected"):
        read_flickr8k(root, "Flickr_8k.trainImages.txt", None, "images")


def test_flickr8k_real_files():
    root = shared_data("flickr8k")
    train = read_flickr8k(root, "Flickr_8k.trainImages.txt", None, "images")
    dev = read_flickr8k(root, "Flickr_8k.devImages.txt", None, "images")
    assert (len(train), len(dev)) == (5997, 1000)
    assert all(len(item.captions) == 5 for item in dev)
    assert not {item.path for item in train} & {item.path for item in dev}


def test_coco_generated_fixture_and_malformed_file(tmp_path):
    root = write_coco(tmp_path / "coco", "val2017", ["x.jpg", "y.jpg"])
    data = CaptioningDataModule(
        format="coco", root=str(root), train_split="val2017", val_split="val2017", image_size=(24, 24), batch_size=2
    )
    batch = _first_batch(data, "val_dataloader")
    assert batch["references"][1] == ["Image 1 caption 0.", "Image 1 caption 1."]
    (root / "annotations" / "captions_val2017.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match=r"captions_val2017.json: not a COCO captions file"):
        read_coco(root / "annotations" / "captions_val2017.json", root / "val2017")


def test_coco_real_files():
    root = shared_data("coco-mini")
    items = read_coco(root / "annotations" / "captions_val2017.json", root / "val2017")
    assert len(items) == 30 and all(len(item.captions) >= 5 for item in items)


def test_jsonl_fixture_and_bad_line(tmp_path):
    root = write_jsonl(tmp_path / "j", "train.jsonl", 3)
    write_jsonl(root, "val.jsonl", 2)
    data = CaptioningDataModule(format="jsonl", root=str(root), image_size=(16, 16), batch_size=3)
    batch = _first_batch(data)
    assert batch["inputs"].shape == (3, 3, 16, 16)
    assert sorted(map(tuple, batch["references"])) == [(f"picture {i}", f"image {i}") for i in range(3)]
    (root / "bad.jsonl").write_text('{"image": "pictures/p0.png", "captions": ["ok"]}\n{"image": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 2: expected"):
        read_jsonl(root / "bad.jsonl")


def test_unknown_format_and_missing_root_are_clear():
    with pytest.raises(ValueError, match="unknown captioning data format 'voc'"):
        CaptioningDataModule(format="voc")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        CaptioningDataModule(format="flickr8k", root="/no/such/folder")


def test_odd_image_modes_load_as_rgb_batches(tmp_path):
    root = tmp_path / "j"
    (root / "pictures").mkdir(parents=True)
    write_image(root / "pictures" / "rgb.png")
    write_image(root / "pictures" / "rgb.jpg")
    Image.open(root / "pictures" / "rgb.png").convert("LA").save(root / "pictures" / "grey_alpha.png")
    Image.open(root / "pictures" / "rgb.jpg").convert("CMYK").save(root / "pictures" / "cmyk.jpg")
    names = ["rgb.png", "grey_alpha.png", "cmyk.jpg"]
    (root / "train.jsonl").write_text("".join(f'{{"image": "pictures/{n}", "captions": ["c"]}}\n' for n in names))
    data = CaptioningDataModule(format="jsonl", root=str(root), val_split="train.jsonl", image_size=(20, 20))
    assert _first_batch(data, "val_dataloader")["inputs"].shape == (3, 3, 20, 20)


def test_training_transform_never_flips_unless_asked():
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    image[:, :, :4] = 255  # left half white
    transform = caption_transform((8, 8), train=True, color_jitter=0.1)
    for _ in range(10):
        out = transform(image)
        assert out[0, :, 0].mean() > out[0, :, -1].mean()


def test_targets_are_cut_and_padded():
    tokenizer = WordTokenizer.train(["one two three four"])
    cut = encode_target(tokenizer, "one two three four", max_tokens=2)
    assert len(cut) == 4 and cut[0] == BOS_ID and cut[-1] == EOS_ID and tokenizer.decode(cut) == "one two"
    padded = pad_token_ids([[1, 5, 2], [1, 2]])
    assert padded.tolist() == [[1, 5, 2], [1, 2, PAD_ID]]
    collate = TextTargetCollator(tokenizer, input_pad_value=0.0)
    batch = collate(
        [
            {"inputs": torch.ones(2, 3), "target": "one", "references": ["one"], "id": "a"},
            {"inputs": torch.ones(2, 5), "target": "two three", "references": ["two three", "three"], "id": "b"},
        ]
    )
    assert batch["inputs"].shape == (2, 2, 5) and batch["lengths"].tolist() == [3, 5] and batch["ids"] == ["a", "b"]
    assert batch["inputs"][0, :, 3:].abs().sum() == 0
    assert batch["tokens"].shape == (2, 4)
