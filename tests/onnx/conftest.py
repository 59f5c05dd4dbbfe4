"""One export of each task's tiny model, shared by the ONNX tests of this folder."""

from __future__ import annotations

import pytest
from onnx_fixtures import TASKS, exported


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """task -> (checkpoint path, export folder)."""
    folder = tmp_path_factory.mktemp("onnx_exports")
    return {task: exported(folder, task) for task in TASKS}
