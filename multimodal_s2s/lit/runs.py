"""Where a run's outputs go, which checkpoint a run starts from, and how checkpoints are written.

One key places a run: ``trainer.default_root_dir``. ``RunLogger`` (the recipes' logger) writes
``<default_root_dir>/version_N/`` (metrics.csv, the resolved config.yaml, ``checkpoints/``), and
``mms2s`` points its folder at ``default_root_dir`` whatever the logger section says.

``resolve_checkpoint`` turns what a user passes as ``--ckpt_path`` into a local file: a path;
``last`` (the newest ``version_N/checkpoints/last.ckpt`` under the run folder, i.e. the latest run of
that recipe, to resume after a crash or kill); ``best`` (the best checkpoint that the latest run's
ModelCheckpoint recorded); or an ``http(s)://`` URL, downloaded once into torch's hub cache. The file
is then read weights-only, like every checkpoint of the suite.

``AtomicCheckpointIO`` writes each checkpoint to a temporary file and renames it into place, so a
kill during a save leaves the previous ``last.ckpt`` intact instead of a truncated one.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger

from multimodal_s2s.checkpoint import CheckpointError, load_checkpoint_file
from multimodal_s2s.outputs import atomic_write

VERSION_FOLDER = re.compile(r"version_(\d+)")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
URL_SCHEMES = ("http", "https")


class RunLogger(CSVLogger):
    """Lightning's CSVLogger in ``<save_dir>/version_N`` (no extra name level); ``mms2s`` sets ``save_dir``
    to ``trainer.default_root_dir``."""

    def __init__(self, save_dir: str = ".", version: int | str | None = None, flush_logs_every_n_steps: int = 100):
        super().__init__(save_dir, name="", version=version, flush_logs_every_n_steps=flush_logs_every_n_steps)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, then a rename: never a partial checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_write(path, lambda file: torch.save(checkpoint, file))


def run_versions(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(N, folder) of the ``version_N`` folders in ``run_dir``, newest (highest N) first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := VERSION_FOLDER.fullmatch(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def latest_last_checkpoint(run_dir: str | Path) -> Path:
    """The ``last.ckpt`` of the newest run in ``run_dir`` that has one; CheckpointError when none has."""
    for _, folder in run_versions(run_dir):
        if (folder / LAST_CHECKPOINT).is_file():
            return folder / LAST_CHECKPOINT
    raise CheckpointError(f"--ckpt_path last: no earlier run with a {LAST_CHECKPOINT} under {run_dir}")


def best_checkpoint(run_dir: str | Path) -> Path:
    """The best checkpoint that the newest run's ModelCheckpoint recorded (read from its last.ckpt)."""
    last = latest_last_checkpoint(run_dir)
    states = load_checkpoint_file(last).get("callbacks", {})
    for key, state in states.items():
        best = state.get("best_model_path") if key.startswith("ModelCheckpoint") else None
        if best and Path(best).is_file():
            return Path(best)
    raise CheckpointError(f"--ckpt_path best: {last} records no best checkpoint that still exists")


def download_checkpoint(url: str) -> Path:
    """A checkpoint URL, downloaded once (atomically) into torch's hub cache; CheckpointError when it fails."""
    name = Path(urllib.parse.urlparse(url).path).name or "checkpoint.ckpt"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    target = Path(torch.hub.get_dir()) / "checkpoints" / f"{digest}-{name}"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target), progress=False)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise CheckpointError(f"{url}: cannot download the checkpoint ({error})") from None
    return target


def resolve_checkpoint(requested: str, run_dir: str | Path | None) -> Path:
    """What ``--ckpt_path`` names -> a local checkpoint file (see the module docstring)."""
    if requested in ("last", "best"):
        if run_dir is None:
            raise CheckpointError(f"--ckpt_path {requested} needs trainer.default_root_dir: where the runs are")
        return latest_last_checkpoint(run_dir) if requested == "last" else best_checkpoint(run_dir)
    if urllib.parse.urlparse(requested).scheme in URL_SCHEMES:
        return download_checkpoint(requested)
    path = Path(requested)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path
