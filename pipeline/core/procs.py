"""Child processes that neither outlive their parent nor shout over it.

A worker pool started by a stage must end when the stage ends, however it
ends: on SIGKILL of the parent the kernel signals every worker (Linux
``PR_SET_PDEATHSIG``), and on Ctrl-C only the parent reacts (workers ignore
SIGINT) and prints one line, instead of every worker printing a traceback.
"""
from __future__ import annotations

import os
import signal
import sys


def launched() -> bool:
    """True inside a torchrun worker (whose launcher holds the stage's output lock)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def quiet_worker() -> None:
    """Call first in a pool worker: ignore Ctrl-C (the parent stops the pool), end silently on the
    SIGTERM the pool sends when it stops (a forked worker inherits the parent's handler), and die
    with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(signal.SIGKILL)
