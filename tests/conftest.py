"""Shared fixtures: tiny inputs per modality, and the path to the real datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real dataset under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} is absent ({path} not found)")
    return path


# Tiny tensors run faster on one thread than split over the machine's two cores; OMP_NUM_THREADS tells the
# suite's own thread set-up (multimodal_s2s.threads) and the CLI processes that tests start the same.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
