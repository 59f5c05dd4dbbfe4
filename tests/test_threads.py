"""Thread and data-loader worker counts from the cores this process may use."""

from __future__ import annotations

import pytest
import torch

from multimodal_s2s import threads


@pytest.fixture
def eight_cores(monkeypatch):
    """A process allowed on 8 cores, alone on its machine, OMP_NUM_THREADS unset; torch's threads restored."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    for name in (threads.THREADS_ENV, *threads.LOCAL_PROCESSES_ENV):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_follow_the_cores_and_the_processes_sharing_them(eight_cores, monkeypatch):
    assert threads.configure_threads() == 8 == torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: 2 processes on this machine
    assert threads.configure_threads() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert threads.configure_threads() == 1  # never 0


def test_omp_num_threads_overrides(eight_cores, monkeypatch):
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure_threads() == 3 == torch.get_num_threads()


def test_workers_feed_a_gpu_and_leave_a_small_cpu_to_compute(eight_cores, monkeypatch):
    assert threads.default_num_workers(on_gpu=True) == 7
    assert threads.default_num_workers(on_gpu=False) == 8 // threads.CPU_CORES_PER_WORKER
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    assert threads.default_num_workers(on_gpu=True) == 1
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert threads.default_num_workers(on_gpu=True) == threads.MAX_GPU_WORKERS
