"""Speech recognition data: the embedded espeak-ng corpus, LibriSpeech, NeMo manifests and FSDD.

Formats (``ASRDataModule(format=...)``):
    espeak: sentences spoken by espeak-ng (``data.espeak``), synthesized on first use into a cache;
        train and val never share a sentence. No downloads; needs the espeak-ng program.
    librispeech: ``root/**/{spk}-{chapter}.trans.txt`` (``UTT-ID TRANSCRIPT`` lines) beside
        ``{spk}-{chapter}-{utt}.flac`` (or .opus, .wav, .ogg, .mp3). The val split is ``val_root``
        when given, else the speakers ``val_speakers`` held back from ``root``.
    manifest: NeMo-style JSONL, one ``{"audio_filepath", "duration", "text"}`` a line (relative audio
        paths are relative to the manifest's folder); ``root`` is the training manifest, ``val_root``
        the validation one.
    fsdd: Free Spoken Digit Dataset, ``root/recordings/{digit}_{speaker}_{index}.wav``; transcripts are
        the digit words ("7" -> "seven"); the splits are ranges of ``index`` (``fsdd_train_indices``...).

Each example is ``{"inputs": (S,) float32 waveform at 16 kHz, "target": str, "references": [str], "id": str}``
(the id is the audio file):
the target is the transcript after ``metrics.text.normalize_transcript`` (lower case, punctuation but
apostrophes removed), or, for whisper's tokenizer (an imported whisper model being fine-tuned), the
transcript as written with its white space collapsed, as whisper was trained on cased and punctuated text
(``target_normalizer``); the reference is the transcript as written (WER/CER normalize it the same way).
``data.text_batches.TextTargetCollator`` pads the waveforms into ``inputs`` (B, S) + ``lengths`` (B,).
Training batches gather utterances of similar duration (so that padding stays small), in random order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from multimodal_s2s.checkpoint import AudioPreprocessing, CheckpointHeader, Task, TrainingData
from multimodal_s2s.data.base import SuiteDataModule, check_loader_options, warn_unknown_tokens
from multimodal_s2s.data.espeak import espeak_corpus, sentences
from multimodal_s2s.data.loaders import evaluation_loader, training_loader
from multimodal_s2s.data.text_batches import TextTargetCollator
from multimodal_s2s.data.translation import train_tokenizer
from multimodal_s2s.metrics.text import normalize_transcript
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE, AudioLoadError, load_audio
from multimodal_s2s.preprocessing.files import AUDIO_SUFFIXES
from multimodal_s2s.tokenizers import Tokenizer, WhisperTokenizer

FORMATS = ("espeak", "librispeech", "manifest", "fsdd")
TOKENIZERS = ("char", "bpe")
TRANSCRIPT_GLOB = "*.trans.txt"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)\.wav")
#: Seed offsets of the espeak splits, so that they draw different sentences and voices.
ESPEAK_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
#: Lightning stage -> the splits it reads (and the training split, unless the run starts from a checkpoint:
#: the tokenizer and preprocessing come from it); predict reads ``predict_split``.
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
MILLISECONDS = 1000  # durations are bucketed in whole milliseconds
INT16_SCALE = 32767  # cached waveforms are kept as 16-bit integers


@dataclass(frozen=True)
class Utterance:
    """One recording and its transcript; ``duration`` in seconds."""

    audio_path: Path
    text: str
    duration: float
    speaker: str = ""


def audio_duration(path: Path) -> float:
    """Seconds of audio in ``path`` from its header (no decoding); AudioLoadError when unreadable."""
    try:
        info = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioLoadError(f"{path}: not an audio file or unreadable ({error})") from None
    return info.frames / info.samplerate


def read_manifest(path: str | Path) -> list[Utterance]:
    """A NeMo-style JSONL manifest -> utterances; a bad line is a ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    utterances, empty = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            audio_path = path.parent / entry["audio_filepath"]  # an absolute path stays absolute
            duration = float(entry["duration"]) if "duration" in entry else audio_duration(audio_path)
            utterances.append(Utterance(audio_path, str(entry["text"]), duration, str(entry.get("speaker", ""))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            reason = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(f"{path} line {number}: not a manifest entry ({reason})") from None
        if not normalize_transcript(utterances[-1].text):
            empty.append(number)
    if empty:
        lines = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        raise ValueError(f"{path}: {len(empty)} of {len(utterances)} entries have an empty transcript (lines {lines})")
    return utterances


def read_librispeech(root: str | Path, speakers: set[str] | None = None) -> list[Utterance]:
    """Every utterance under ``root`` in the LibriSpeech layout (only ``speakers`` when given), in path order."""
    transcripts = sorted(Path(root).rglob(TRANSCRIPT_GLOB))
    if not transcripts:
        raise FileNotFoundError(f"{root}: no LibriSpeech transcripts ({TRANSCRIPT_GLOB}) found")
    utterances = []
    for transcript in transcripts:
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utterance_id, _, text = line.partition(" ")
            speaker = utterance_id.split("-")[0]
            if speakers is not None and speaker not in speakers:
                continue
            audio_path = _find_audio(transcript.parent, utterance_id)
            if audio_path is None:
                raise FileNotFoundError(f"{transcript} line {number}: no audio file for {utterance_id}")
            utterances.append(Utterance(audio_path, text.strip(), audio_duration(audio_path), speaker))
    return utterances


def _find_audio(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{s}" for s in AUDIO_SUFFIXES if (folder / f"{stem}{s}").is_file()), None)


def librispeech_speakers(root: str | Path) -> list[str]:
    """Speaker ids under ``root`` (the top folders that hold transcripts), sorted as numbers."""
    speakers = {path.name.split("-")[0] for path in Path(root).rglob(TRANSCRIPT_GLOB)}
    return sorted(speakers, key=lambda s: (len(s), s))


def read_fsdd(root: str | Path, indices: Sequence[int]) -> list[Utterance]:
    """FSDD recordings whose index is in [indices[0], indices[1]] (inclusive); transcripts are digit words."""
    root = Path(root)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    first, last = indices
    utterances = []
    for path in sorted(folder.glob("*.wav")):
        match = FSDD_NAME.fullmatch(path.name)
        if match and first <= int(match["index"]) <= last:
            text = DIGIT_WORDS[int(match["digit"])]
            utterances.append(Utterance(path, text, audio_duration(path), match["speaker"]))
    if not utterances:
        raise FileNotFoundError(f"{folder}: no FSDD recordings with index {first}..{last}")
    return utterances


def written_transcript(text: str) -> str:
    """The transcript as written, white space collapsed: whisper's targets."""
    return " ".join(text.split())


def target_normalizer(tokenizer: Tokenizer | None) -> Callable[[str], str]:
    """How transcripts become targets for ``tokenizer``: as written for whisper's (its models write case and
    punctuation), ``normalize_transcript`` for the suite's own."""
    return written_transcript if isinstance(tokenizer, WhisperTokenizer) else normalize_transcript


class SpeechDataset(Dataset):
    """Utterances -> examples (see the module docstring), decoded on access.

    ``cache_audio`` keeps each decoded waveform in memory (16-bit) after its first read: worth it when
    decoding (opus, mp3) costs more than training on it, and the corpus fits in RAM (1 h = 115 MB);
    with loader workers each worker holds its own cache. ``silence_pad``: up to this many seconds of
    silence (uniform, drawn on every access) before and after each waveform. ``normalize``: transcript ->
    target text (``target_normalizer``).
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        cache_audio: bool = False,
        silence_pad: float = 0.0,
        normalize: Callable[[str], str] = normalize_transcript,
    ):
        if not utterances:
            raise ValueError("no utterances")
        self.utterances = list(utterances)
        self.normalize = normalize
        self.cache: dict[int, np.ndarray] | None = {} if cache_audio else None
        self.max_pad_samples = round(silence_pad * SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.utterances)

    def waveform(self, index: int) -> np.ndarray:
        """(S,) float32 at 16 kHz."""
        if self.cache is None:
            return load_audio(self.utterances[index].audio_path)
        if index not in self.cache:
            waveform = load_audio(self.utterances[index].audio_path)
            self.cache[index] = np.round(np.clip(waveform, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
        return self.cache[index].astype(np.float32) / INT16_SCALE

    def __getitem__(self, index: int) -> dict[str, Any]:
        utterance = self.utterances[index]
        waveform = torch.from_numpy(self.waveform(index))
        if self.max_pad_samples:
            before, after = torch.randint(0, self.max_pad_samples + 1, (2,)).tolist()
            waveform = F.pad(waveform, (before, after))
        return {
            "inputs": waveform,
            "target": self.normalize(utterance.text),
            "references": [utterance.text],
            "id": str(utterance.audio_path),
        }

    def durations_ms(self) -> list[int]:
        return [round(utterance.duration * MILLISECONDS) for utterance in self.utterances]


class ASRDataModule(SuiteDataModule):
    """Train / val (/ test) loaders of one format (see the module docstring); the tokenizer is learned
    from the training transcripts (a run that starts from a checkpoint uses the checkpoint's tokenizer
    and preprocessing instead).

    Args:
        format: "espeak", "librispeech", "manifest" or "fsdd".
        root: the dataset folder (librispeech, fsdd) or the training manifest (manifest).
        val_root, test_root: a folder or manifest of the same kind for val / test; librispeech without
            ``val_root`` holds back ``val_speakers`` from ``root``.
        val_speakers: LibriSpeech speaker ids held back for validation, or a count N (the last N speakers).
        fsdd_train_indices, fsdd_val_indices, fsdd_test_indices: inclusive [first, last] recording indices.
        espeak_train_size, espeak_val_size, espeak_seed: the embedded corpus (val and test have
            ``espeak_val_size`` utterances each).
        tokenizer: "char" or "bpe" (byte-level BPE with ``vocab_size`` ids).
        max_duration: training utterances longer than this (seconds) are dropped; val is never filtered.
        max_train_utterances: use only the first N training utterances (None = all).
        batch_size: loaders; ``bucket_by_duration``: batches of similar durations.
        num_workers: data-loader workers; None: sized from the cores (``threads.default_num_workers``).
        cache_audio: keep decoded waveforms in memory (see SpeechDataset).
        silence_pad: training utterances get up to this many seconds of silence before and after
            (drawn anew each epoch): for corpora whose clips start right at the speech (espeak), so that
            models also accept the pauses that transcription windows keep around speech; recorded as
            ``AudioPreprocessing.silence_pad_seconds``, the Transcriber's pad after speech when above 0.1 s.
    """

    task = Task.ASR

    def __init__(
        self,
        format: str = "espeak",
        root: str | None = None,
        val_root: str | None = None,
        test_root: str | None = None,
        val_speakers: list[str] | int = 4,
        fsdd_train_indices: tuple[int, int] = (10, 49),
        fsdd_val_indices: tuple[int, int] = (5, 9),
        fsdd_test_indices: tuple[int, int] | None = None,
        espeak_train_size: int = 4000,
        espeak_val_size: int = 200,
        espeak_seed: int = 0,
        tokenizer: str = "char",
        vocab_size: int = 256,
        max_duration: float = 30.0,
        max_train_utterances: int | None = None,
        batch_size: int = 32,
        num_workers: int | None = None,
        bucket_by_duration: bool = True,
        cache_audio: bool = False,
        silence_pad: float = 0.0,
    ):
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown ASR data format {format!r}; choose from {', '.join(FORMATS)}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
        if format != "espeak" and (root is None or not Path(root).exists()):
            raise FileNotFoundError(f"{root}: dataset not found (format {format!r} needs root)")
        if format == "manifest" and val_root is None:
            raise ValueError("format 'manifest' needs val_root: the validation manifest")
        check_loader_options(batch_size, num_workers)
        if not (isinstance(silence_pad, int | float) and 0 <= silence_pad < math.inf):
            raise ValueError(f"data.silence_pad must be a finite number of seconds >= 0, got {silence_pad!r}")
        self.save_hyperparameters()
        self.splits: dict[str, list[Utterance]] = {}
        self.datasets: dict[str, SpeechDataset] = {}
        self.tokenizer: Tokenizer | None = None
        self.preprocessing: AudioPreprocessing | None = None

    @property
    def description(self) -> TrainingData:
        train = self.splits.get("train")
        return TrainingData(self.hparams.format, self.hparams.root, None if train is None else len(train))

    def use_header(self, header: CheckpointHeader) -> None:
        """The checkpoint's tokenizer and preprocessing replace the ones learned from the training split."""
        super().use_header(header)
        if header.tokenizer != self.tokenizer:
            self.datasets.clear()  # built for another tokenizer's targets
        self.tokenizer, self.preprocessing = header.tokenizer, header.preprocessing

    def setup(self, stage: str | None = None) -> None:
        self.adopt_run_checkpoint()
        if self.tokenizer is None:
            self._learn_from_training_split()
        splits = STAGE_SPLITS.get(stage, ("train", "val")) if stage != "predict" else (self.predict_split,)
        for split in splits:
            if self.has_split(split):
                self.dataset(split)
            if self.header is not None and split != "train" and split in self.splits:
                texts = [normalize_transcript(u.text) for u in self.splits[split]]
                warn_unknown_tokens(self.tokenizer, texts, f"{split} split")

    def _learn_from_training_split(self) -> None:
        """The tokenizer and the preprocessing (see AudioPreprocessing) from the training transcripts."""
        train = self.read_split("train")
        if self.hparams.max_train_utterances is not None:
            train = train[: self.hparams.max_train_utterances]
        train = [u for u in train if u.duration <= self.hparams.max_duration]
        if not train:
            raise ValueError(f"no training utterance is at most data.max_duration={self.hparams.max_duration} s")
        self.splits["train"] = sorted(train, key=lambda u: u.duration)
        corpus = [normalize_transcript(u.text) for u in train]
        self.tokenizer = train_tokenizer(self.hparams.tokenizer, corpus, self.hparams.vocab_size, 1)
        rates = [len(self.tokenizer.encode(text)) / u.duration for text, u in zip(corpus, train, strict=True)]
        tokens_per_second = max(rates)
        self.preprocessing = AudioPreprocessing(
            sample_rate=SAMPLE_RATE,
            max_seconds=round(max(u.duration for u in train), 3),
            median_seconds=round(float(np.median([u.duration for u in train])), 3),
            tokens_per_second=round(tokens_per_second, 3),
            silence_pad_seconds=float(self.hparams.silence_pad),
        )

    def dataset(self, split: str) -> SpeechDataset:
        """The dataset of ``split``, read on first use (sorted by duration: less padding)."""
        if split not in self.splits:
            self.splits[split] = sorted(self.read_split(split), key=lambda u: u.duration)
        if split not in self.datasets:
            silence_pad = self.hparams.silence_pad if split == "train" else 0.0
            normalize = target_normalizer(self.tokenizer)
            self.datasets[split] = SpeechDataset(self.splits[split], self.hparams.cache_audio, silence_pad, normalize)
        return self.datasets[split]

    def has_split(self, split: str) -> bool:
        hp = self.hparams
        if split != "test":
            return True
        return hp.format == "espeak" or hp.test_root is not None or (hp.format == "fsdd" and bool(hp.fsdd_test_indices))

    def read_split(self, split: str) -> list[Utterance]:
        """The utterances of ``split`` ("train", "val" or "test")."""
        hp = self.hparams
        if hp.format == "espeak":
            return self._espeak_split(split)
        if hp.format == "fsdd":
            indices = {"train": hp.fsdd_train_indices, "val": hp.fsdd_val_indices, "test": hp.fsdd_test_indices}
            return read_fsdd(hp.test_root if split == "test" and hp.test_root else hp.root, indices[split])
        path = {"train": hp.root, "val": hp.val_root, "test": hp.test_root}[split]
        if hp.format == "manifest":
            return read_manifest(path)
        if split == "test" or hp.val_root is not None:
            return read_librispeech(path)
        held_back = self._held_back_speakers()  # val: these speakers of root; train: the others
        all_speakers = set(librispeech_speakers(hp.root))
        return read_librispeech(hp.root, held_back if split == "val" else all_speakers - held_back)

    def _held_back_speakers(self) -> set[str]:
        speakers, chosen = librispeech_speakers(self.hparams.root), self.hparams.val_speakers
        held_back = set(speakers[-chosen:]) if isinstance(chosen, int) else {str(s) for s in chosen}
        unknown = held_back - set(speakers)
        if unknown or not held_back or held_back == set(speakers):
            raise ValueError(
                f"val_speakers {sorted(held_back)} must be some (not all) of the speakers under "
                f"{self.hparams.root}: {', '.join(speakers)}"
            )
        return held_back

    def _espeak_split(self, split: str) -> list[Utterance]:
        hp = self.hparams
        if split != "train":
            return read_manifest(espeak_corpus(hp.espeak_val_size, self._espeak_seed(split)))
        held_out = set(self._held_out_sentences())
        return read_manifest(espeak_corpus(hp.espeak_train_size, self._espeak_seed("train"), exclude=held_out))

    def _held_out_sentences(self) -> list[str]:
        """The sentences of the espeak val and test splits (text only, no synthesis)."""
        size = self.hparams.espeak_val_size
        return [text for split in ("val", "test") for text in sentences(size, self._espeak_seed(split))]

    def _espeak_seed(self, split: str) -> int:
        return self.hparams.espeak_seed * len(ESPEAK_SPLIT_SEEDS) + ESPEAK_SPLIT_SEEDS[split]

    def collator(self) -> TextTargetCollator:
        return TextTargetCollator(self.tokenizer, input_pad_value=0.0)

    def train_dataloader(self) -> DataLoader:
        dataset, hp = self.dataset("train"), self.hparams
        lengths = dataset.durations_ms() if hp.bucket_by_duration else None
        return training_loader(dataset, hp.batch_size, hp.num_workers, self.collator(), lengths)

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        if not self.has_split("test"):
            raise ValueError("no test set: give data.test_root (or fsdd_test_indices)")
        return self.evaluation_loader("test")

    def evaluation_loader(self, split: str) -> DataLoader:
        hp = self.hparams
        return evaluation_loader(self.dataset(split), hp.batch_size, hp.num_workers, self.collator())
