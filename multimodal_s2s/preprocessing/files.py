"""Input files: the suffix tables of audio, image and text files, finding them in folders (for the
command-line apps and the data sets), and reading the lines of a text file."""

from __future__ import annotations

import gzip
import os
from collections.abc import Collection, Sequence
from pathlib import Path

#: File name endings read as audio (a transcript's recording, a folder's audio files), in lookup order.
AUDIO_SUFFIXES = (".flac", ".opus", ".wav", ".ogg", ".mp3")
#: File name endings treated as images when a folder is scanned.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
#: The ending of a gzipped text file (read as text by ``read_lines``).
GZIP_SUFFIX = ".gz"


def find_files(folder: str | os.PathLike, suffixes: Collection[str], recursive: bool = False) -> list[Path]:
    """The files directly inside ``folder`` (``recursive``: at any depth) whose name ends in one of
    ``suffixes`` (any case), sorted."""
    entries = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in entries if p.is_file() and p.suffix.lower() in suffixes)


def expand_inputs(
    names: Sequence[str], suffixes: Collection[str], kind: str, recursive: bool = False
) -> tuple[list[Path], list[str]]:
    """Command-line inputs -> (files, problems): files as given, folders as their ``kind`` files
    (``find_files``); a missing path or a folder without such files becomes a one-line problem."""
    paths, problems = [], []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = find_files(path, suffixes, recursive)
            paths += found
            if not found:
                problems.append(f"{path}: folder holds no {kind}")
        elif path.exists():
            paths.append(path)
        else:
            problems.append(f"{path}: file not found")
    return paths, problems


def split_lines(text: str) -> list[str]:
    """Lines as ``wc -l`` counts them: split at "\\n" only (not at the Unicode separators, such as
    U+2028 or U+0085, where ``str.splitlines`` also breaks and misaligns parallel text), "\\r" of
    CRLF endings removed, no empty last line for a final newline."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_lines(path: str | Path) -> list[str]:
    """The lines (``split_lines``) of a UTF-8 text file, plain or gzipped (by the .gz suffix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    opener = gzip.open if path.suffix == GZIP_SUFFIX else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as file:  # newline="": line endings kept as read
            return split_lines(file.read())
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except (gzip.BadGzipFile, EOFError) as error:
        raise ValueError(f"{path}: corrupt gzip file ({error})") from None
