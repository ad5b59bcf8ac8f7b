"""How torch's OpenMP threads wait between kernels, chosen before torch is imported.

After a parallel region an idle thread of torch's OpenMP team spins before it
sleeps: 300,000 spins by default (libgomp's ``GOMP_SPINCOUNT``). When another
program holds a core, the spinning thread takes CPU from a thread that has
work, and a training step of many small kernels waits at barriers for a
descheduled thread: beside two busy processes training ran at 7-16k real
tokens/s against ~55-68k quiet (BENCHMARKS.md, "On a busy machine").

``SPIN_COUNT`` spins keep the quiet speed, gave 1.4-2.5x beside busy
processes, were no slower beside another textpipe-sized training and faster for
a torchrun job beside one; beside other *tiny* multi-threaded torch jobs
(embedding and hidden size 16, as in a test suite) they were slower, the case
the thread count is for (``$OMP_NUM_THREADS``). It changes only how threads
wait, never which thread computes what, so trained bytes do not depend on it
(the thread count does: it stays ``train.threads``). libgomp reads its environment once, when
torch loads it, so this runs before the first ``import torch`` of the process
(the ``textpipe`` entry point calls it); child processes (torchrun workers)
inherit the variable. A user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins.
"""
from __future__ import annotations

import os
import sys

SPIN_COUNT = 100_000
USER_KNOBS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def set_wait_policy() -> bool:
    """Set ``GOMP_SPINCOUNT`` unless the user chose a wait policy or torch is already loaded
    (too late: libgomp has read its environment); True when it was set."""
    if "torch" in sys.modules or any(k in os.environ for k in USER_KNOBS):
        return False
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True
