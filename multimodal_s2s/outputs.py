"""How the apps write files: never over an input, never over an existing file unless asked, atomically.

``OutputPlan`` decides, before anything is written, whether a target may be written: never when it is
one of the run's inputs or a file that another input of the same run writes; over an existing file
only with ``overwrite`` (and then it says so on stderr). ``atomic_write`` writes a temporary file in
the target's folder and renames it over the target, so a full disk or a crash leaves either the old
file or the new one, never a truncated file under the final name.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

#: Decimals of the scores written as JSON.
SCORE_DIGITS = 4


def json_score(score: float, digits: int = SCORE_DIGITS) -> float | None:
    """A score for JSON output: rounded, or None when not finite (JSON has no infinity)."""
    return round(score, digits) if math.isfinite(score) else None


class OutputError(ValueError):
    """A file that must not or could not be written (one line naming it)."""


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename it into place.

    The temporary file is removed when ``write`` or the rename fails. OutputError names the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise OutputError(f"{path}: cannot write here ({error.strerror or error})") from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _file_mode(path))  # mkstemp makes it private (0600)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"{path}: could not be written ({error.strerror or error})") from None
        raise


def _file_mode(path: Path) -> int:
    """The mode a new file gets here: an existing target's own, else 0666 less the process's umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    return 0o666 & ~_umask()


def write_folder(folder: str | os.PathLike, files: dict[str, bytes], overwrite: bool = False) -> Path:
    """Write ``files`` (name -> bytes) into ``folder``. A new or empty folder is written whole beside it and
    renamed into place (a crash leaves no half-written folder under its name); a folder with files is
    refused unless ``overwrite``, which replaces the named files one by one, atomically, and keeps the others
    (e.g. a git clone's ``.git``). OutputError (one line naming the folder) when it cannot be written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: not written, it is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise OutputError(
                f"{folder}: not written, the folder has files (overwrite=True or --overwrite replaces them)"
            )
        for name, data in files.items():
            atomic_write(folder / name, lambda file, data=data: file.write(data))
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    except OSError as error:
        raise OutputError(f"{folder}: cannot write here ({error.strerror or error})") from None
    try:
        for name, data in files.items():
            atomic_write(staging / name, lambda file, data=data: file.write(data))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        if folder.is_dir():
            folder.rmdir()  # empty: checked above
        os.replace(staging, folder)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise OutputError(f"{folder}: could not be written ({error.strerror or error})") from None
        raise
    return folder


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``atomic_write`` of UTF-8 text."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


class OutputPlan:
    """The targets of one run: refuses inputs, targets already planned, and existing files (unless
    ``overwrite``). ``claim`` returns the one-line problem, or None when the target may be written."""

    def __init__(self, inputs: Iterable[str | os.PathLike], overwrite: bool = False):
        self.protected = {Path(path).resolve() for path in inputs}
        self.overwrite = overwrite
        self.planned: dict[Path, str] = {}  # resolved target -> the input it belongs to

    def claim(self, target: str | os.PathLike, owner: str | os.PathLike = "") -> str | None:
        target = Path(target)
        resolved = target.resolve()
        if resolved in self.protected:
            return f"{owner or target}: not written, its output {target} is an input of this run"
        if resolved in self.planned:
            earlier = self.planned[resolved]
            return f"{owner or target}: not written, its output {target} is already written for {earlier}"
        if target.is_dir():
            return f"{owner or target}: not written, its output {target} is a folder"
        if target.exists() and not self.overwrite:
            return f"{owner or target}: not written, {target} exists (use --overwrite to replace it)"
        if target.exists():
            print(f"overwriting {target}", file=sys.stderr)
        self.planned[resolved] = str(owner or target)
        return None

    def claim_all(self, targets: Iterable[str | os.PathLike], owner: str | os.PathLike = "") -> str | None:
        """``claim`` several targets of one input: all of them or none."""
        targets = list(targets)
        before = dict(self.planned)
        for target in targets:
            problem = self.claim(target, owner)
            if problem is not None:
                self.planned = before
                return problem
        return None


def check_writable_folder(path: str | os.PathLike, key: str) -> None:
    """OutputError naming ``key`` when folder ``path`` could not be created or written (nothing is created):
    its nearest existing ancestor must be a writable folder."""
    path = Path(path).absolute()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise OutputError(f"{key} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{key} {path}: {existing} is not writable")


def check_output_dir(path: str | os.PathLike) -> Path:
    """``path`` as an output folder: created if missing; OutputError when it is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: --output-dir must be a folder, and this is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path}: cannot create the output folder ({error.strerror or error})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the output folder is not writable")
    return path
