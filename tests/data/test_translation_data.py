"""Translation data: the embedded dates task, parallel text (plain and gzipped), TSV pairs, tokenizers
trained on the training side only, batches and length bucketing."""

from __future__ import annotations

import datetime
import random
import re

import pytest
import torch
from torch.utils.data import RandomSampler, SequentialSampler
from translation_fixtures import write_lines, write_parallel

from multimodal_s2s.checkpoint import Task, TrainingData
from multimodal_s2s.data.dates import FORMATS, cardinal, date_pairs, ordinal, ordinal_suffix, split_of, year_words
from multimodal_s2s.data.loaders import LengthBucketBatchSampler, TokenBudgetBatchSampler
from multimodal_s2s.data.translation import (
    TranslationDataModule,
    read_parallel,
    read_tsv,
    text_file,
)
from multimodal_s2s.tokenizers import BPETokenizer, WordTokenizer
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID
from tests.conftest import shared_data

ISO = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
TRAIN = [("a small dog runs", "ein kleiner Hund rennt"), ("two men sit", "zwei Männer sitzen"), ("a cat", "eine Katze")]
VAL = [("a zebra runs", "ein Zebra rennt"), ("two dogs", "zwei Hunde")]


# --- dates ---------------------------------------------------------------------------------------


def test_number_words():
    assert [cardinal(n) for n in (0, 7, 13, 20, 42, 99)] == [
        "zero", "seven", "thirteen", "twenty", "forty-two", "ninety-nine",
    ]
    assert [ordinal(n) for n in (1, 2, 3, 5, 12, 20, 21, 30, 31)] == [
        "first", "second", "third", "fifth", "twelfth", "twentieth", "twenty-first", "thirtieth", "thirty-first",
    ]
    assert [ordinal_suffix(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st",
    ]


def test_year_words():
    rng = random.Random(0)
    assert year_words(1999, rng) == "nineteen ninety-nine"
    assert year_words(1905, rng) == "nineteen oh five"
    assert year_words(1900, rng) == "nineteen hundred"
    assert year_words(2000, rng) == "two thousand"
    assert year_words(2005, rng) in ("two thousand five", "two thousand and five")
    assert {year_words(2024, random.Random(seed)) for seed in range(20)} >= {"twenty twenty-four"}


def test_dates_are_seeded_and_valid_iso():
    pairs = date_pairs(300, seed=3)
    assert pairs == date_pairs(300, seed=3)
    assert pairs != date_pairs(300, seed=4)
    for _, target in pairs:
        assert ISO.match(target), target
        missing_parts = (len("YYYY-MM-DD") - len(target)) // len("-MM")
        datetime.date.fromisoformat(target + "-01" * missing_parts)  # a real date (raises otherwise)
    # all three ISO precisions occur: the output length varies
    assert {len(target) for _, target in pairs} == {4, 7, 10}


@pytest.mark.parametrize(("source_format", "pattern"), [(0, "%m/%d/%Y"), (1, "%d.%m.%Y")])
def test_numeric_dates_mean_their_targets(source_format, pattern):
    """Numeric day formats parse back to the target: month-day-year and day-month-year both reorder."""
    rng = random.Random(0)
    for _ in range(50):
        date = datetime.date(rng.randint(1800, 2099), rng.randint(1, 12), rng.randint(1, 28))
        source = FORMATS["day"][0][source_format](date, rng)
        assert datetime.datetime.strptime(source, pattern).date() == date


def test_dates_validation_holds_unseen_sources_whatever_the_training_size():
    data = TranslationDataModule(dates_train_size=2000, dates_val_size=300, batch_size=16)
    data.setup("fit")
    train_sources = {source for source, _ in data.texts["train"]}
    assert not train_sources & {source for source, _ in data.texts["val"]}
    assert {split_of(source) for source in train_sources} == {"train"}
    assert data.task == Task.TRANSLATION and len(data.datasets["val"]) == 300
    smaller = TranslationDataModule(dates_train_size=500, dates_val_size=300, batch_size=16)
    smaller.setup("fit")
    assert smaller.texts["val"] == data.texts["val"]


# --- files ---------------------------------------------------------------------------------------


def test_parallel_plain_and_gzip(tmp_path):
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    for root, gz in ((plain, False), (zipped, True)):
        root.mkdir()
        write_parallel(root, "train", TRAIN, gz=gz)
        write_parallel(root, "val", VAL, gz=gz)
    assert text_file(zipped / "train.en") == zipped / "train.en.gz"
    assert read_parallel(text_file(zipped / "train.en"), text_file(zipped / "train.de")) == TRAIN
    for root in (plain, zipped):
        data = TranslationDataModule(format="parallel", root=str(root), tokenizer="word", batch_size=2)
        data.setup("fit")
        assert data.texts["train"] == TRAIN and data.texts["val"] == VAL


def test_lines_split_at_newlines_only(tmp_path):
    """U+2028 and U+0085 inside a sentence (str.splitlines would break there) and CRLF endings keep files aligned."""
    (tmp_path / "train.en").write_bytes("one\u2028line\r\ntwo\x85parts\r\n".encode())
    (tmp_path / "train.de").write_bytes(b"eins\nzwei\n")
    assert read_parallel(tmp_path / "train.en", tmp_path / "train.de") == [
        ("one\u2028line", "eins"), ("two\x85parts", "zwei"),
    ]


def test_mismatched_line_counts_name_both_files(tmp_path):
    write_lines(tmp_path / "train.en.gz", ["one", "two", "three"])
    write_lines(tmp_path / "train.de", ["eins", "zwei"])
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word")
    with pytest.raises(ValueError, match="not aligned") as error:
        data.setup("fit")
    message = str(error.value)
    assert "train.en.gz has 3 lines" in message and "train.de has 2" in message


def test_missing_file_is_named(tmp_path):
    write_parallel(tmp_path, "train", TRAIN)
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word")
    with pytest.raises(FileNotFoundError, match=r"val\.en: file not found"):
        data.setup("fit")


def test_tsv_pairs_and_columns(tmp_path):
    lines = [f"{s}\t{t}\tCC-BY 2.0 (France) Attribution" for s, t in TRAIN]
    write_lines(tmp_path / "train.tsv.gz", lines)
    write_lines(tmp_path / "val.tsv", [f"{s}\t{t}" for s, t in VAL] + [""])
    assert read_tsv(tmp_path / "train.tsv.gz") == TRAIN
    assert read_tsv(tmp_path / "train.tsv.gz", columns=(1, 0)) == [(t, s) for s, t in TRAIN]
    data = TranslationDataModule(format="tsv", root=str(tmp_path), tokenizer="char", batch_size=2)
    data.setup("fit")
    assert data.texts["val"] == VAL  # the blank line is skipped
    write_lines(tmp_path / "bad.tsv", ["fine\tgut", "no tab here"])
    with pytest.raises(ValueError, match=r"bad\.tsv line 2: expected at least 2 tab-separated fields, got 1"):
        read_tsv(tmp_path / "bad.tsv")


def test_pairs_with_an_empty_side_are_dropped(tmp_path):
    write_parallel(tmp_path, "train", [*TRAIN, ("", "leer")])
    write_parallel(tmp_path, "val", VAL)
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word")
    with pytest.warns(UserWarning, match="dropped 1 pairs"):
        data.setup("fit")
    assert data.texts["train"] == TRAIN


# --- tokenizers ----------------------------------------------------------------------------------


def test_bpe_round_trip_trained_on_training_side_only(tmp_path):
    write_parallel(tmp_path, "train", TRAIN * 5)
    write_parallel(tmp_path, "val", VAL)
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="bpe", vocab_size=300)
    data.setup("fit")
    assert isinstance(data.tokenizer, BPETokenizer) and data.source_tokenizer is not data.tokenizer
    for source, target in VAL + TRAIN:  # unseen words too: byte-level BPE has no unknowns
        assert data.source_tokenizer.decode(data.source_tokenizer.encode(source)) == source
        assert data.tokenizer.decode(data.tokenizer.encode(target)) == target
    vocabulary = data.tokenizer.hf_tokenizer.get_vocab()
    assert not any("Zebra" in piece for piece in vocabulary)  # a validation-only word was not learned
    assert any("Hund" in piece for piece in vocabulary)


def test_joint_and_separate_vocabularies(tmp_path):
    write_parallel(tmp_path, "train", TRAIN)
    write_parallel(tmp_path, "val", VAL)
    separate = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word")
    separate.setup("fit")
    assert isinstance(separate.tokenizer, WordTokenizer)
    assert "Hund" in separate.tokenizer.token_to_id and "Hund" not in separate.source_tokenizer.token_to_id
    assert "zebra" not in separate.source_tokenizer.token_to_id  # validation words are not in the vocabulary
    joint = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word", joint_vocab=True)
    joint.setup("fit")
    assert joint.source_tokenizer is joint.tokenizer
    assert {"Hund", "dog"} <= set(joint.tokenizer.token_to_id)


# --- batches -------------------------------------------------------------------------------------


def test_batches_pad_sources_and_targets(tmp_path):
    write_parallel(tmp_path, "train", TRAIN)
    write_parallel(tmp_path, "val", VAL)
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word", batch_size=2)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert batch["references"] == [[VAL[0][1]], [VAL[1][1]]]
    inputs, lengths, tokens = batch["inputs"], batch["lengths"], batch["tokens"]
    assert inputs.dtype == torch.long and inputs.shape == (2, int(lengths.max()))
    assert lengths.tolist() == [5, 4]  # BOS a zebra(unknown) runs EOS; BOS two dogs(unknown) EOS
    assert inputs[:, 0].tolist() == [BOS_ID, BOS_ID] and inputs[1, 3].item() == EOS_ID and inputs[1, 4] == PAD_ID
    assert data.tokenizer.decode(tokens[1].tolist()) == "zwei"  # "Hunde" is not a training word
    assert tokens[0, 0] == BOS_ID and EOS_ID in tokens[0].tolist()


def test_length_buckets_cover_every_index_once():
    lengths = [random.Random(i).randint(1, 60) for i in range(1000)]
    sampler = LengthBucketBatchSampler(RandomSampler(range(1000)), batch_size=16, drop_last=False, lengths=lengths)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches of 16 would spread over about 50
    dropping = LengthBucketBatchSampler(SequentialSampler(range(1000)), 16, drop_last=True, lengths=lengths)
    assert len(list(dropping)) == len(dropping) == 62
    assert all(len(batch) == 16 for batch in dropping)


def test_token_budget_batches_hold_the_budget_and_every_index_once():
    lengths = [random.Random(i).randint(1, 60) for i in range(1000)]
    sampler = TokenBudgetBatchSampler(RandomSampler(range(1000)), max_tokens=300, lengths=lengths, pool_examples=256)
    plans = set()
    for _ in range(20):  # Lightning validates at an epoch's len()-th batch: every epoch has exactly len()
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(len(batch) * max(lengths[i] for i in batch) <= 300 for batch in batches)
        seen = [i for batch in batches for i in batch]
        plans.add(len(seen) - 1000)  # > 0: batches repeated to fill the epoch; < 0: a surplus dropped
        largest = max(map(len, batches))
        assert len(set(seen)) >= 1000 - 2 * largest and len(seen) - len(set(seen)) <= 2 * largest
    assert len(plans) > 1  # the plans differ from epoch to epoch, the count does not
    sizes = {max(lengths[i] for i in batch): len(batch) for batch in batches}
    assert sizes[min(sizes)] > 5 * sizes[max(sizes)]  # short pairs make big batches, long ones small
    assert len(list(TokenBudgetBatchSampler(SequentialSampler(range(3)), 10, [50, 1, 2]))) == 2  # over budget: alone


def test_token_budget_training_loader(tmp_path):
    write_parallel(tmp_path, "train", TRAIN)
    write_parallel(tmp_path, "val", VAL)
    data = TranslationDataModule(format="parallel", root=str(tmp_path), tokenizer="word", max_batch_tokens=12)
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert sum(len(batch["references"]) for batch in batches) == len(data.texts["train"])
    for batch in batches:
        assert batch["tokens"].numel() <= 12 and batch["inputs"].numel() <= 12
    with pytest.raises(ValueError, match=r"data.max_batch_tokens must be None or an integer >= 1, got 0"):
        TranslationDataModule(format="parallel", root=str(tmp_path), max_batch_tokens=0)


# --- the real dataset ----------------------------------------------------------------------------


def test_multi30k_loads():
    root = shared_data("multi30k")
    data = TranslationDataModule(
        format="parallel", root=str(root), source_lang="de", target_lang="en", test_split="test_2016_flickr",
        tokenizer="bpe", vocab_size=1000, max_train_pairs=2000,
    )
    data.setup("fit")
    assert len(data.texts["train"]) == 2000 and len(data.texts["val"]) == 1014 and len(data.texts["test"]) == 1000
    assert data.description == TrainingData("parallel de-en", str(root), 2000)
    for source, target in data.texts["val"][:50]:
        assert data.source_tokenizer.decode(data.source_tokenizer.encode(source)) == source
        assert data.tokenizer.decode(data.tokenizer.encode(target)) == target
