"""The embedded speech corpus: sentences from a small seeded grammar, spoken by espeak-ng.

No downloads: ``espeak_corpus(size, seed)`` draws ``size`` sentences (3 to 7 words over a closed
vocabulary of 131 words, homophones left out so that every word is recoverable from sound),
gives each one a random voice (2 English accents x 6 voice variants), speed and pitch, synthesizes
it with the ``espeak-ng`` program, and writes it as 16 kHz FLAC with a NeMo-style JSONL manifest
(``audio_filepath``, ``duration``, ``text``, plus ``voice``, ``speed``, ``pitch``) into a cache folder
named after the corpus's settings. Later calls with the same settings reuse the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

#: Bump when the grammar, the voices or the file layout change: old caches are then left alone.
CORPUS_VERSION = 2
ESPEAK_PROGRAM = "espeak-ng"
INSTALL_HINT = (
    "espeak-ng is not installed: install it (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install "
    "espeak-ng; Windows: the installer from github.com/espeak-ng/espeak-ng/releases)"
)
#: The cache root: $MMS2S_CACHE, else ~/.cache/multimodal_s2s.
CACHE_ENV = "MMS2S_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "multimodal_s2s"
MANIFEST_NAME = "manifest.jsonl"
EXCLUSION_KEY_CHARS = 10  # hex digits of the excluded sentences' hash in the cache folder's name

ACCENTS = ("en-us", "en")  # American and British English
VARIANTS = ("m1", "m3", "m7", "f1", "f3", "f4")  # 3 male and 3 female voices: 12 voices with the accents
SPEED_RANGE = (150, 190)  # words per minute (espeak-ng's default is 175)
PITCH_RANGE = (35, 65)  # 0..99 (default 50)
SYNTHESIS_THREADS = 4  # subprocesses run in parallel; the GIL is released while they run

DETERMINERS = ("the", "a", "my", "your", "this", "every")
ADJECTIVES = ("red", "green", "blue", "yellow", "black", "white", "big", "small", "old", "happy", "quiet", "warm")
NOUNS = (
    "cat", "dog", "bird", "horse", "house", "car", "boat", "train", "book", "table", "chair", "window",
    "door", "garden", "river", "teacher", "doctor", "friend", "apple", "letter", "phone", "picture", "box", "lamp",
)
VERBS = ("sees", "likes", "finds", "opens", "paints", "moves", "carries", "watches", "buys", "cleans", "wants", "drops")
IMPERATIVES = ("open", "close", "paint", "move", "clean", "bring", "find", "check")
PREPOSITIONS = ("near", "under", "behind", "inside", "above", "beside")
NAMES = ("anna", "peter", "maria", "james", "lucy", "david", "sarah", "oscar")
TIMES = ("today", "tomorrow", "yesterday", "tonight", "again")
NUMBERS = ("three", "five", "six", "seven", "nine", "ten", "twelve", "twenty", "fifty", "hundred")
UNITS = ("minutes", "hours", "days", "degrees", "percent")
DEVICES = ("timer", "alarm", "heater", "radio", "light")


@dataclass(frozen=True)
class Voice:
    """espeak-ng settings of one utterance: ``-v accent+variant -s speed -p pitch``."""

    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


def _noun_phrase(rng: random.Random) -> str:
    adjective = f"{rng.choice(ADJECTIVES)} " if rng.random() < 0.6 else ""
    return f"{rng.choice(DETERMINERS)} {adjective}{rng.choice(NOUNS)}"


def plural(noun: str) -> str:
    """English plural of the grammar's nouns: box -> boxes, city -> cities, cat -> cats."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return f"{noun}es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return f"{noun[:-1]}ies"
    return f"{noun}s"


def _subject(rng: random.Random) -> str:
    return rng.choice(NAMES) if rng.random() < 0.3 else _noun_phrase(rng)


#: Sentence shapes (3 to 7 words), each a function of the generator; all draw from the word lists above.
TEMPLATES = (
    lambda r: f"{_subject(r)} {r.choice(VERBS)} {_noun_phrase(r)}",
    lambda r: f"{_subject(r)} {r.choice(VERBS)} {_noun_phrase(r)} {r.choice(TIMES)}",
    lambda r: f"please {r.choice(IMPERATIVES)} {_noun_phrase(r)}",
    lambda r: f"{_noun_phrase(r)} is {r.choice(PREPOSITIONS)} {_noun_phrase(r)}",
    lambda r: f"set the {r.choice(DEVICES)} to {r.choice(NUMBERS)} {r.choice(UNITS)}",
    lambda r: f"there are {r.choice(NUMBERS)} {plural(r.choice(NOUNS))} {r.choice(PREPOSITIONS)} {_noun_phrase(r)}",
)


def vocabulary() -> set[str]:
    """Every word the grammar can produce (plurals included)."""
    phrases = (DETERMINERS, ADJECTIVES, NOUNS, VERBS, IMPERATIVES, PREPOSITIONS, NAMES, TIMES, NUMBERS, UNITS, DEVICES)
    words = {word for group in phrases for phrase in group for word in phrase.split()}
    return words | {plural(noun) for noun in NOUNS} | {"please", "is", "set", "the", "to", "there", "are"}


def sentences(count: int, seed: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``count`` distinct sentences from the grammar (seeded), none of them in ``exclude``."""
    rng, drawn, seen = random.Random(seed), [], set(exclude)
    attempts_left = 100 * count
    while len(drawn) < count and attempts_left:
        attempts_left -= 1
        sentence = rng.choice(TEMPLATES)(rng)
        if sentence not in seen:
            seen.add(sentence)
            drawn.append(sentence)
    if len(drawn) < count:
        raise ValueError(f"the grammar gave only {len(drawn)} new sentences of the {count} asked for")
    return drawn


def random_voice(rng: random.Random) -> Voice:
    return Voice(rng.choice(ACCENTS), rng.choice(VARIANTS), rng.randint(*SPEED_RANGE), rng.randint(*PITCH_RANGE))


def espeak_available() -> bool:
    return shutil.which(ESPEAK_PROGRAM) is not None


def require_espeak() -> None:
    """Raise RuntimeError with a one-line install hint when espeak-ng is missing."""
    if not espeak_available():
        raise RuntimeError(INSTALL_HINT)


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text`` with espeak-ng: float32 mono waveform (S,) at 16 kHz."""
    command = [ESPEAK_PROGRAM, "--stdout", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch), text]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"
        raise RuntimeError(f"espeak-ng failed on {text!r} with voice {voice.name}: {message}")
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")  # (S,) at espeak's 22050 Hz
    return soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def espeak_corpus(
    size: int, seed: int, exclude: set[str] | frozenset[str] = frozenset(), cache_dir: str | Path | None = None
) -> Path:
    """The manifest of a corpus of ``size`` utterances (made on first use, then read from the cache).

    ``exclude``: sentences that must not occur (another split's). The cache folder is
    ``<cache_dir or cache_root()>/espeak-v<version>/n<size>-s<seed>-x<hash of exclude>``.
    """
    if size < 1:
        raise ValueError(f"an espeak corpus needs size >= 1, got {size}")
    exclusion_key = hashlib.sha1("\n".join(sorted(exclude)).encode()).hexdigest()[:EXCLUSION_KEY_CHARS]
    folder = Path(cache_dir or cache_root()) / f"espeak-v{CORPUS_VERSION}" / f"n{size}-s{seed}-x{exclusion_key}"
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        return manifest
    require_espeak()
    texts = sentences(size, seed, exclude)
    rng = random.Random(seed)
    voices = [random_voice(rng) for _ in texts]
    folder.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> dict:
        waveform = synthesize(texts[index], voices[index])
        path = folder / f"{index:06d}.flac"
        soundfile.write(path, waveform, SAMPLE_RATE)
        voice = voices[index]
        return {
            "audio_filepath": path.name,
            "duration": round(len(waveform) / SAMPLE_RATE, 3),
            "text": texts[index],
            "voice": voice.name,
            "speed": voice.speed,
            "pitch": voice.pitch,
        }

    with ThreadPoolExecutor(SYNTHESIS_THREADS) as pool:
        entries = list(pool.map(write, range(size)))
    partial = manifest.with_suffix(".partial")
    partial.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")
    partial.replace(manifest)  # the manifest appears only once every file is written
    return manifest
