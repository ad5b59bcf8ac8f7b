"""How many threads torch computes with: what the machine can give now, re-read while the work runs.

Torch's OpenMP team waits at a barrier after every parallel kernel. When it has
more threads than there are free cores, one of them is descheduled behind
another program and every kernel waits for it: on this 2-core host, training
beside one CPU-bound process fell from ~51,000 to ~1,100 tokens/s with two
threads, while one thread kept ~30,000 (BENCHMARKS.md, "On a busy machine").
No fixed setting is right both alone and beside other work, so the thread
count follows the machine:

- **usable cores**: the CPUs this process may run on (affinity) and, under a
  cgroup CPU quota (a container, a batch slot), that quota, rounded up;
- **others' work**: the CPU time the rest of the machine spent on those CPUs,
  in cores, measured from ``/proc/stat`` minus this process's own time, over
  the last :data:`INTERVAL_S` seconds (at the start: the runnable tasks that
  are not this process's, from the same file);
- **threads** = the usable cores less others' work, rounded down after adding
  :data:`HEADROOM` (:func:`pick_threads`), never below 1.

:meth:`ThreadGovernor.tick` is called once per step or batch; every
:data:`INTERVAL_S` it samples and, when the answer changed, calls
``torch.set_num_threads`` from the thread that runs the kernels (OpenMP keeps
the thread count per calling thread). Trained bytes can depend on the count
(1 and 2 threads part after a few hundred steps, in the last bits first): a
run that adapted is repeatable only at the counts it ran, which its metrics
list (``steps_at_threads``); set ``train.threads`` for bit-for-bit reruns.
A fixed count wins, and then nothing adapts:
``train.threads`` > 0, or ``$OMP_NUM_THREADS`` (a user's, a scheduler's or
torchrun's share). Where ``/proc/stat`` is missing (not Linux), the count is the
usable cores, fixed. The OpenMP wait policy stays :mod:`pipeline.openmp`'s.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Callable

INTERVAL_S = 1.0  # seconds between samples while work runs
HEADROOM = 0.3  # cores of others' work tolerated before a thread is given up
PROC_STAT = Path("/proc/stat")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait, guest: already in user)


def pick_threads(usable: int, others: float) -> int:
    """Threads for ``usable`` cores of which others' work takes ``others`` cores (pure)."""
    return max(1, min(usable, math.floor(usable - max(others, 0.0) + HEADROOM)))


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """This process's cgroup CPU quota in cores (v2 ``cpu.max`` or v1 ``cfs_quota_us``), None when unlimited."""
    candidates = [root / "cpu.max"]
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                candidates.insert(0, root / line[3:].lstrip("/") / "cpu.max")
    except OSError:
        pass
    for path in candidates:
        try:
            quota, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 else None


def affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """CPUs this process may run on, capped by a cgroup quota (rounded up)."""
    cores = len(affinity())
    quota = cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def busy_seconds(cpus: set[int], stat: str) -> float:
    """Seconds the given CPUs have spent on work since boot, from the text of ``/proc/stat``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            fields = rest.split()
            total += sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
    return total / tick


def env_threads() -> int | None:
    """``$OMP_NUM_THREADS`` when it holds a positive count (as torch itself reads it), else None."""
    share = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(share) if share.isdigit() and int(share) > 0 else None


class MachineProbe:
    """What the governor reads of a Linux machine: ``/proc/stat`` and this process's own tasks and times."""

    def __init__(self) -> None:
        self.cpus = affinity()

    @staticmethod
    def available() -> bool:
        return PROC_STAT.exists()

    def busy(self) -> float:
        """Seconds the usable CPUs have been busy since boot, all processes."""
        return busy_seconds(self.cpus, PROC_STAT.read_text())

    @staticmethod
    def own() -> float:
        """CPU seconds of this process (all its threads)."""
        t = os.times()
        return t.user + t.system

    @staticmethod
    def runnable_others() -> int:
        """Runnable tasks of other processes now: ``procs_running`` less this process's running threads."""
        stat = PROC_STAT.read_text()
        running = next((int(line.split()[1]) for line in stat.splitlines() if line.startswith("procs_running")), 1)
        own = 0
        for task in Path("/proc/self/task").iterdir():
            try:
                own += (task / "stat").read_text().rpartition(")")[2].split()[0] == "R"
            except OSError:
                continue
        return max(0, running - max(own, 1))


class ThreadGovernor:
    """The thread count of this process's torch kernels, fixed or following the machine (module doc)."""

    def __init__(self, usable: int, fixed: int | None, set_threads: Callable[[int], None],
                 probe: MachineProbe | None = None, clock: Callable[[], float] = time.monotonic):
        self.usable, self.fixed, self.probe = usable, fixed, probe
        self._set, self._clock = set_threads, clock
        self.steps_at: Counter[int] = Counter()
        self.changes = 0
        self.threads = fixed or usable
        self._last = (0.0, 0.0, 0.0)  # (time, machine busy s, own CPU s) at the last sample
        if self.adaptive:
            self.threads = pick_threads(usable, float(probe.runnable_others()))
            self._last = self._sample()
        self._set(self.threads)

    @classmethod
    def start(cls, threads: int = 0, processes: int = 1) -> "ThreadGovernor":
        """``threads`` > 0 fixes the count, as does ``$OMP_NUM_THREADS``; else the usable cores split
        over ``processes`` are the ceiling and others' work sets the count (on Linux)."""
        import torch

        probe = MachineProbe() if MachineProbe.available() else None
        return cls(max(1, usable_cores() // processes), threads or env_threads(), torch.set_num_threads, probe)

    @property
    def adaptive(self) -> bool:
        return self.fixed is None and self.probe is not None

    def _sample(self) -> tuple[float, float, float]:
        return self._clock(), self.probe.busy(), self.probe.own()

    def tick(self, steps: int = 1) -> int:
        """Count ``steps`` at the current thread count; every INTERVAL_S, re-decide it. The count."""
        self.steps_at[self.threads] += steps
        if not self.adaptive or self._clock() - self._last[0] < INTERVAL_S:
            return self.threads
        (t0, busy0, own0), (t1, busy1, own1) = self._last, self._sample()
        self._last = (t1, busy1, own1)
        threads = pick_threads(self.usable, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9))
        if threads != self.threads:
            self.threads, self.changes = threads, self.changes + 1
            self._set(threads)
        return self.threads

    def summary(self) -> dict:
        """For a run's metrics: how the count was chosen, its range and the steps run at each count."""
        used = self.steps_at or Counter({self.threads: 0})
        return {"threads_mode": "adaptive" if self.adaptive else "fixed", "threads": max(used),
                "threads_min": min(used), "thread_changes": self.changes,
                "steps_at_threads": {str(k): v for k, v in sorted(used.items())}}
