"""Thread and data-loader worker counts from the cores this process may use."""

from __future__ import annotations

import pytest
import torch
from recipe_fixtures import write_recipe

from multimodal_s2s import threads
from multimodal_s2s.apps.training import suite_cli


@pytest.fixture
def eight_cores(monkeypatch):
    """A process allowed on 8 cores, alone on its machine, OMP_NUM_THREADS unset; torch's threads restored."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    for name in (threads.THREADS_ENV, *threads.LOCAL_PROCESSES_ENV):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpu_threads_are_the_cores_less_the_workers(eight_cores, monkeypatch):
    monkeypatch.setattr(threads.torch.cuda, "is_available", lambda: False)
    assert (threads.configure_threads(), threads.default_num_workers()) == (7, 1)
    assert torch.get_num_threads() == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: 4 processes on this machine, 2 cores each
    assert (threads.configure_threads(), threads.default_num_workers()) == (1, 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # CPU DDP with a process a core: one thread, no worker
    assert (threads.configure_threads(), threads.default_num_workers()) == (1, 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert threads.configure_threads() == 1  # never 0
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert (threads.default_num_threads(on_gpu=False), threads.default_num_workers(on_gpu=False)) == (28, 4)


def test_omp_num_threads_overrides(eight_cores, monkeypatch):
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure_threads() == 3 == torch.get_num_threads()


def test_on_a_gpu_the_cores_feed_it(eight_cores, monkeypatch):
    assert (threads.default_num_threads(on_gpu=True), threads.default_num_workers(on_gpu=True)) == (8, 7)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    assert threads.default_num_workers(on_gpu=True) == 1
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert threads.default_num_workers(on_gpu=True) == threads.MAX_GPU_WORKERS


def test_configured_workers_leave_their_cores_to_torch(eight_cores, monkeypatch):
    monkeypatch.setattr(threads.torch.cuda, "is_available", lambda: False)
    assert threads.configure_threads(num_workers=0) == 8
    assert threads.configure_threads(num_workers=3) == 5
    assert threads.configure_threads(num_workers=20) == 1  # never 0


@pytest.mark.parametrize(("workers", "expected"), [([], 1), (["--data.init_args.num_workers", "0"], 2)])
def test_training_takes_its_threads_from_the_recipes_workers(eight_cores, monkeypatch, tmp_path, workers, expected):
    """On 2 cores: one thread beside the default worker, both cores when the recipe asks for no worker."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(threads.torch.cuda, "is_available", lambda: False)
    suite_cli(["--config", str(write_recipe("translation", tmp_path)), *workers], run=False)
    assert torch.get_num_threads() == expected
