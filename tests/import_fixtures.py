"""What the import tests of HF folders share: damaged copies of a folder, and the check that ``mms2s import``
refuses one in one line naming the folder, with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from multimodal_s2s.apps.cli import main


def truncated(folder: Path) -> None:
    """Cut the folder's model.safetensors in half."""
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def changed_config(**changes) -> Callable[[Path], None]:
    """A damage that sets ``changes`` in the folder's config.json."""

    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return change


def assert_refused(kind: str, source: Path, damage: Callable[[Path], None], message: str, tmp_path: Path,
                   capsys) -> None:
    """``mms2s import KIND`` of a copy of ``source`` damaged by ``damage`` fails with one line holding ``message``
    and the folder's path, and writes nothing."""
    folder = tmp_path / "damaged"
    folder.mkdir()
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    damage(folder)
    out = tmp_path / "out.ckpt"
    assert main(["import", kind, str(folder), str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and str(folder) in error
    assert not out.exists() and not list(tmp_path.glob(".out.ckpt.*"))
