"""Training on several processes with torchrun / DistributedDataParallel.

``train.nproc: N`` (> 1) makes the train stage relaunch itself under
``torchrun --standalone --nproc_per_node=N`` (one machine; gloo on CPU,
nccl on CUDA). For several machines, run the same stage under torchrun
yourself on every node (see README); a stage that finds itself under
torchrun does not relaunch.

Every rank builds the same global batch list (same seed, same epoch), then
:func:`rank_batches` gives each rank an equal share: every row exactly once
per epoch over all ranks, and the same number of steps on every rank, so
gradient all-reduces never wait on a rank that ran out of data.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .core.errors import PipelineError
from .cpu_share import env_threads, usable_cores
from .core.procs import die_with_parent, launched


def default_threads(world_size: int) -> int:
    """torch CPU threads per process for ``train.threads: 0`` (and the ``OMP_NUM_THREADS`` that
    ``launch`` hands torchrun's processes): ``$OMP_NUM_THREADS`` when it holds a positive number (a
    scheduler's or a user's share of a shared machine, as torch itself reads it), else the cores
    split over the processes (the usable ones: affinity and cgroup quota, :mod:`pipeline.cpu_share`)."""
    return env_threads() or max(1, usable_cores() // world_size)


def launch(nproc: int, args: list[str]) -> int:
    """Run ``textpipe <args>`` as ``nproc`` processes under torchrun on this machine; its exit status."""
    env = dict(os.environ)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: talk over loopback only
    env.setdefault("OMP_NUM_THREADS", str(default_threads(nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "stages", *args]
    # SIGTERM, not SIGKILL, for the torchrun agent: it stops its workers on SIGTERM.
    return subprocess.run(cmd, env=env, preexec_fn=lambda: die_with_parent(signal.SIGTERM)).returncode


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: torch.device) -> "World":
        """The process group from torchrun's environment, or a world of one."""
        if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
            return cls()
        world = cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
        die_with_parent(signal.SIGKILL)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return world

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all ranks (each rank's own values in a world of one)."""
        if self.size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def rank_batches(batches: list[np.ndarray], rank: int, size: int) -> list[np.ndarray]:
    """This rank's batches: an equal number on every rank, every row once over all ranks.

    When the batch count is not a multiple of ``size``, the largest batches are split in
    two until it is (rows are never dropped or repeated); then rank r takes batches
    r, r + size, r + 2 size, ... of the global order.
    """
    if size == 1:
        return batches
    batches = list(batches)  # arrays: a split batch is two views
    while len(batches) % size:
        i = max(range(len(batches)), key=lambda k: (len(batches[k]), -k))
        if len(batches[i]) < 2:
            raise PipelineError(f"{len(batches)} one-row batches cannot be shared equally by {size} processes; "
                                "lower train.nproc")
        half = len(batches[i]) // 2
        batches[i:i + 1] = [batches[i][:half], batches[i][half:]]
    return batches[rank::size]
