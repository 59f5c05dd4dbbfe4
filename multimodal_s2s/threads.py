"""How many CPU threads and data-loader workers this process uses.

The suite sizes both from the cores this process may use (``os.sched_getaffinity``: taskset, cgroup
cpusets, a SLURM binding), shared among the processes of a run on this machine (``LOCAL_WORLD_SIZE``
from torchrun, ``SLURM_NTASKS_PER_NODE``, else the processes of the initialized process group):

    training on a GPU: workers = cores per process - 1 (at most 8): the cores feed the GPU
    on the CPU:        workers = cores per process // 8, at least 1 from 2 cores (none on 1 core)
                       torch threads = cores per process - workers (at least 1)

So on 2 cores one thread computes and one worker prepares batches, and under CPU DDP on 2 cores each of
the 2 processes computes on one thread. Torch's default (a thread per core) loses little on a quiet
machine, but as soon as anything else runs on those cores (a data-loader worker, another job) its
threads wait for each other: on this project's shared 2-core machine the embedded recipes ran 2 to 20
times slower with 2 threads than with 1 (see README.md, "Threads and data-loader workers").

``configure_threads()`` applies the thread count where the apps start (``mms2s``) and where training has
read its recipe (``apps.training.SuiteCLI``); Lightning's DDP launcher divides the cores among the processes
it starts.
Overrides: ``OMP_NUM_THREADS=N`` (torch then uses N threads; the suite leaves them alone) and
``--data.num_workers N`` (a data module's ``num_workers``; None means ``default_num_workers()``): a recipe's
or command line's count is what training subtracts from the cores, so ``--data.num_workers 0`` on 2 cores
computes on 2 threads (on a quiet machine the faster choice when a batch costs little to make).
"""

from __future__ import annotations

import os

import torch

THREADS_ENV = "OMP_NUM_THREADS"
#: Environment variables that say how many processes of the run share this machine, first found wins.
LOCAL_PROCESSES_ENV = ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE")
MAX_GPU_WORKERS = 8
#: On the CPU, one data-loader worker per this many cores of the process (at least one from 2 cores).
CPU_CORES_PER_WORKER = 8


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_processes() -> int:
    """Processes of this run on this machine: torchrun's or SLURM's count, else the process group's size
    (one machine assumed), else 1."""
    for name in LOCAL_PROCESSES_ENV:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def cores_per_process() -> int:
    """This process's share of the usable cores (at least 1)."""
    return max(1, usable_cores() // local_processes())


def default_num_workers(on_gpu: bool | None = None) -> int:
    """Data-loader workers for this process (see the module docstring); ``on_gpu`` None: CUDA is available."""
    cores = cores_per_process()
    if torch.cuda.is_available() if on_gpu is None else on_gpu:
        return min(MAX_GPU_WORKERS, max(1, cores - 1))
    return 0 if cores == 1 else max(1, cores // CPU_CORES_PER_WORKER)


def default_num_threads(on_gpu: bool | None = None, num_workers: int | None = None) -> int:
    """Torch's intra-op threads for this process: its cores, less those its CPU data-loader workers use
    (``num_workers``: the loaders' configured count; None: ``default_num_workers()``)."""
    cores = cores_per_process()
    if torch.cuda.is_available() if on_gpu is None else on_gpu:
        return cores
    workers = default_num_workers(on_gpu=False) if num_workers is None else num_workers
    return max(1, cores - workers)


def configure_threads(num_workers: int | None = None) -> int:
    """Sets torch's intra-op threads to ``default_num_threads(num_workers=num_workers)`` unless
    OMP_NUM_THREADS is set; -> threads."""
    if THREADS_ENV not in os.environ:
        torch.set_num_threads(default_num_threads(num_workers=num_workers))
    return torch.get_num_threads()
