"""Translation data: embedded dates, aligned parallel text files, TSV pairs; tokenizers trained on the training side.

Formats (``TranslationDataModule(format=...)``):
    dates: written dates -> ISO 8601 (``data.dates``), procedural and seeded, no files.
    parallel: two aligned files per split, one sentence a line, plain or gzipped:
        ``root/<split>.<source_lang>[.gz]`` and ``root/<split>.<target_lang>[.gz]`` (Multi30k's layout:
        ``train.en.gz`` / ``train.de.gz``, ``val.*``, ``test_2016_flickr.*``).
    tsv: ``root/<split>.tsv[.gz]``, one pair a line, tab-separated (``tsv_columns`` picks the source
        and target columns, so Tatoeba-style files with an attribution column work too).

Batches are dicts (``data.text_batches.TextTargetCollator``): ``inputs`` (B, L) long source ids
(BOS ... EOS, then PAD), ``lengths`` (B,), ``tokens`` (B, L_out) long target ids (BOS ... EOS, then
PAD), ``references`` list[list[str]] (the target text of each example).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from multimodal_s2s.checkpoint import CheckpointHeader, Task, TrainingData
from multimodal_s2s.data.base import SuiteDataModule, check_loader_options, warn_unknown_tokens
from multimodal_s2s.data.dates import date_pairs
from multimodal_s2s.data.loaders import evaluation_loader, training_loader
from multimodal_s2s.data.text_batches import TextTargetCollator, encode_target
from multimodal_s2s.preprocessing.files import GZIP_SUFFIX, read_lines
from multimodal_s2s.preprocessing.tokens import encode_source
from multimodal_s2s.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer
from multimodal_s2s.types import PAD_ID

FORMATS = ("dates", "parallel", "tsv")
TOKENIZERS = ("char", "word", "bpe")
#: Split name -> seed offset of the dates pairs, so that train, val and test are drawn apart.
DATES_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
Pair = tuple[str, str]


def text_file(base: str | Path) -> Path:
    """``base`` if it exists, else ``base.gz``; FileNotFoundError names both."""
    base = Path(base)
    for candidate in (base, base.with_name(base.name + GZIP_SUFFIX)):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{base}: file not found (nor {base.name}{GZIP_SUFFIX})")


def read_parallel(source_path: str | Path, target_path: str | Path) -> list[Pair]:
    """Two aligned files -> (source, target) pairs; differing line counts are an error naming both files."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"parallel files are not aligned: {source_path} has {len(sources)} lines, {target_path} has {len(targets)}"
        )
    return list(zip(sources, targets, strict=True))


def read_tsv(path: str | Path, columns: Sequence[int] = (0, 1)) -> list[Pair]:
    """Tab-separated lines -> (line[columns[0]], line[columns[1]]) pairs; blank lines are skipped."""
    source_column, target_column = columns
    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) <= max(source_column, target_column):
            raise ValueError(
                f"{path} line {number}: expected at least {max(columns) + 1} tab-separated fields, got {len(fields)}"
            )
        pairs.append((fields[source_column], fields[target_column]))
    return pairs


def without_blank(pairs: list[Pair], origin: str) -> list[Pair]:
    """Drop pairs with an empty side (a warning says how many)."""
    kept = [(source, target) for source, target in pairs if source.strip() and target.strip()]
    if len(kept) < len(pairs):
        warnings.warn(f"{origin}: dropped {len(pairs) - len(kept)} pairs with an empty side", stacklevel=2)
    return kept


def train_tokenizer(kind: str, corpus: list[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """A "char", "word" or "bpe" tokenizer learned from ``corpus`` (word and BPE: at most ``vocab_size`` ids)."""
    if kind == "char":
        return CharTokenizer.train(corpus, min_frequency=min_frequency)
    if kind == "word":
        return WordTokenizer.train(corpus, min_frequency=min_frequency, max_vocab_size=vocab_size, lowercase=False)
    if kind == "bpe":
        return BPETokenizer.train(corpus, vocab_size=vocab_size, min_frequency=min_frequency)
    raise ValueError(f"unknown tokenizer {kind!r}; choose from {', '.join(TOKENIZERS)}")


class SourceEncodedPairs(Dataset):
    """(source, target) text pairs with the sources encoded once. Items are the examples that
    ``data.text_batches.TextTargetCollator`` batches: {"inputs": (L,) source ids, "target": str,
    "references": [target], "id": the source text}."""

    def __init__(self, pairs: list[Pair], source_tokenizer: Tokenizer, origin: str = "dataset"):
        if not pairs:
            raise ValueError(f"{origin}: no translation pairs")
        self.pairs = pairs
        self.sources = [torch.tensor(encode_source(source_tokenizer, source)) for source, _ in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, target = self.pairs[index]
        return {"inputs": self.sources[index], "target": target, "references": [target], "id": source}

    def source_lengths(self) -> list[int]:
        return [len(source) for source in self.sources]


class TranslationDataModule(SuiteDataModule):
    """Train / val / test loaders of one format (see the module docstring) with tokenizers trained on
    the training split only (a run that starts from a checkpoint uses the checkpoint's tokenizers).

    Args:
        format: "dates", "parallel" or "tsv".
        root: dataset folder (parallel and tsv).
        source_lang, target_lang: file suffixes of the parallel format (``train.de``, ``train.en``).
        train_split, val_split, test_split: split names (file stems); test_split None: no test set.
        tsv_columns: [source column, target column] of the tsv format.
        tokenizer: "char", "word" or "bpe" (byte-level BPE, HF tokenizers), for both sides.
        vocab_size: most ids of a word or BPE vocabulary (per side, or shared when ``joint_vocab``).
        joint_vocab: one tokenizer learned from both sides of the training split, else one per side.
        min_frequency: a unit (word, character, BPE pair) must occur this often in training to be kept.
        max_source_tokens, max_target_tokens: drop longer training pairs (None = keep all); val and
            test are never filtered.
        max_train_pairs: use only the first N training pairs (None = all).
        batch_size: loaders; ``bucket_by_length`` batches training pairs of similar length.
        max_batch_tokens: training batches of at most this many padded tokens (a pair counts its longer
            side, target with BOS/EOS) instead of ``batch_size`` pairs (fairseq's ``--max-tokens``); None:
            ``batch_size`` pairs. Validation and test keep ``batch_size``.
        num_workers: data-loader workers; None: sized from the cores (``threads.default_num_workers``).
        dates_train_size, dates_val_size, dates_seed: the embedded dates task.
    """

    task = Task.TRANSLATION

    def __init__(
        self,
        format: str = "dates",
        root: str | None = None,
        source_lang: str = "en",
        target_lang: str = "de",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = None,
        tsv_columns: tuple[int, int] = (0, 1),
        tokenizer: str = "char",
        vocab_size: int = 8000,
        joint_vocab: bool = False,
        min_frequency: int = 1,
        max_source_tokens: int | None = None,
        max_target_tokens: int | None = None,
        max_train_pairs: int | None = None,
        batch_size: int = 64,
        num_workers: int | None = None,
        bucket_by_length: bool = True,
        max_batch_tokens: int | None = None,
        dates_train_size: int = 20000,
        dates_val_size: int = 1000,
        dates_seed: int = 0,
    ):
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown translation data format {format!r}; choose from {', '.join(FORMATS)}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
        if format != "dates" and (root is None or not Path(root).is_dir()):
            raise FileNotFoundError(f"{root}: dataset folder not found (format {format!r} needs root)")
        check_loader_options(batch_size, num_workers)
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 1
        ):
            raise ValueError(f"data.max_batch_tokens must be None or an integer >= 1, got {max_batch_tokens!r}")
        self.save_hyperparameters()
        self.texts: dict[str, list[Pair]] = {}
        self.datasets: dict[str, SourceEncodedPairs] = {}
        self.source_tokenizer: Tokenizer | None = None
        self.tokenizer: Tokenizer | None = None  # the target side's, as Seq2SeqModule expects
        self.preprocessing = None  # text needs no preprocessing besides the tokenizers

    @property
    def description(self) -> TrainingData:
        hp = self.hparams
        name = f"{hp.format} {hp.source_lang}-{hp.target_lang}" if hp.format == "parallel" else hp.format
        train = self.texts.get("train")
        return TrainingData(name, hp.root, None if train is None else len(train))

    def use_header(self, header: CheckpointHeader) -> None:
        """The checkpoint's tokenizers replace the ones learned from the training split."""
        super().use_header(header)
        self.source_tokenizer, self.tokenizer = header.source_tokenizer, header.tokenizer
        self.datasets.clear()  # their sources were encoded with the other tokenizer: encoded again when asked for

    def setup(self, stage: str | None = None) -> None:
        self.adopt_run_checkpoint()
        if self.tokenizer is None:
            self._train_tokenizers(self._training_pairs())
        for split in ("train", "val", "test"):
            if self.has_split(split):
                self.dataset(split)
        if self.header is not None:
            for split in ("val", "test"):
                if self.has_split(split):
                    sources, targets = zip(*self.texts[split], strict=True)
                    warn_unknown_tokens(self.source_tokenizer, list(sources), f"{split} split sources")
                    warn_unknown_tokens(self.tokenizer, list(targets), f"{split} split references")

    def has_split(self, split: str) -> bool:
        return self._split_name(split) is not None or self.hparams.format == "dates"

    def _split_name(self, split: str) -> str | None:
        hp = self.hparams
        return {"train": hp.train_split, "val": hp.val_split, "test": hp.test_split}[split]

    def dataset(self, split: str) -> SourceEncodedPairs:
        """The dataset of ``split``, read and encoded on first use (training pairs over the length limits dropped)."""
        if split not in self.texts:
            pairs = self.read_split(split, self._split_name(split))
            if split == "train":
                pairs = [pair for pair in self._cut(pairs) if self._within_limits(pair)]
            self.texts[split] = pairs
        if split not in self.datasets:
            self.datasets[split] = SourceEncodedPairs(self.texts[split], self.source_tokenizer, f"{split} split")
        return self.datasets[split]

    def read_split(self, split: str, name: str | None) -> list[Pair]:
        """The text pairs of ``split`` ("train", "val" or "test"), ``name`` being its file stem."""
        hp = self.hparams
        if hp.format == "dates":
            size = hp.dates_train_size if split == "train" else hp.dates_val_size
            return date_pairs(size, hp.dates_seed + DATES_SPLIT_SEEDS[split], split)
        root = Path(hp.root)
        if hp.format == "parallel":
            source_path, target_path = (text_file(root / f"{name}.{lang}") for lang in (hp.source_lang, hp.target_lang))
            return without_blank(read_parallel(source_path, target_path), f"{source_path} / {target_path}")
        tsv_path = text_file(root / f"{name}.tsv")
        return without_blank(read_tsv(tsv_path, hp.tsv_columns), str(tsv_path))

    def train_dataloader(self) -> DataLoader:
        dataset, hp = self.dataset("train"), self.hparams
        if hp.max_batch_tokens is not None:
            lengths = self._pair_lengths(dataset)
        else:
            lengths = dataset.source_lengths() if hp.bucket_by_length else None
        return training_loader(dataset, hp.batch_size, hp.num_workers, self._collator(), lengths, hp.max_batch_tokens)

    def _pair_lengths(self, dataset: SourceEncodedPairs) -> list[int]:
        """Each training pair's longer side in tokens (the target with BOS and EOS): what it adds to a token budget."""
        targets = (len(encode_target(self.tokenizer, target)) for _, target in dataset.pairs)
        return [max(source, target) for source, target in zip(dataset.source_lengths(), targets, strict=True)]

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        if not self.has_split("test"):
            raise ValueError("no test set: give data.test_split (a split name under root)")
        return self.evaluation_loader("test")

    def evaluation_loader(self, split: str) -> DataLoader:
        hp = self.hparams
        return evaluation_loader(self.dataset(split), hp.batch_size, hp.num_workers, self._collator())

    def _collator(self) -> TextTargetCollator:
        """Pads the source ids with PAD_ID, encodes and pads the targets."""
        return TextTargetCollator(self.tokenizer, input_pad_value=PAD_ID)

    def _training_pairs(self) -> list[Pair]:
        """The training split, cut to ``max_train_pairs``."""
        return self._cut(self.read_split("train", self.hparams.train_split))

    def _cut(self, pairs: list[Pair]) -> list[Pair]:
        return pairs[: self.hparams.max_train_pairs] if self.hparams.max_train_pairs is not None else pairs

    def _train_tokenizers(self, pairs: list[Pair]) -> None:
        """Learn the tokenizers from the training pairs, then drop training pairs over the length limits."""
        hp = self.hparams
        sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
        if hp.joint_vocab:
            self.source_tokenizer = self.tokenizer = train_tokenizer(
                hp.tokenizer, sources + targets, hp.vocab_size, hp.min_frequency
            )
        else:
            self.source_tokenizer = train_tokenizer(hp.tokenizer, sources, hp.vocab_size, hp.min_frequency)
            self.tokenizer = train_tokenizer(hp.tokenizer, targets, hp.vocab_size, hp.min_frequency)
        self.texts["train"] = [pair for pair in pairs if self._within_limits(pair)]

    def _within_limits(self, pair: Pair) -> bool:
        limits = (self.hparams.max_source_tokens, self.hparams.max_target_tokens)
        tokenizers = (self.source_tokenizer, self.tokenizer)
        return all(
            limit is None or len(tokenizer.encode(text)) <= limit
            for limit, tokenizer, text in zip(limits, tokenizers, pair, strict=True)
        )
