"""Parallel text files in Multi30k's layout for the translation tests."""

from __future__ import annotations

import gzip
from pathlib import Path


def write_lines(path: Path, lines: list[str]) -> Path:
    """``path`` with one line per item, UTF-8, gzipped when it ends in ``.gz``."""
    text = "".join(f"{line}\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as file:
            file.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_parallel(root: Path, split: str, pairs: list[tuple[str, str]], gz: bool = False) -> None:
    """``root/<split>.en`` and ``root/<split>.de`` (``.gz`` with ``gz``) from (English, German) pairs."""
    suffix = ".gz" if gz else ""
    write_lines(root / f"{split}.en{suffix}", [s for s, _ in pairs])
    write_lines(root / f"{split}.de{suffix}", [t for _, t in pairs])
