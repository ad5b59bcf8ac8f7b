"""Peak memory of this process and its children, for the benchmarks: the sum of PSS over the tree."""
from __future__ import annotations

import threading
import time

import psutil


class PeakRSS:
    """Samples the memory of this process plus its children (the tokenize workers) every 250 ms.

    Reading a process's PSS makes the kernel walk its mappings; every 50 ms that cost the
    tokenize workers ~2 s of a 16 s stage (13%), every 250 ms nothing measurable.

    Uses PSS (proportional set size) where the OS reports it: forked workers
    share the parent's pages, and summing plain RSS would count them twice.
    """

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                total = sum(_pss(p) for p in [me, *me.children(recursive=True)])
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            time.sleep(0.25)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _pss(proc: psutil.Process) -> int:
    try:
        return proc.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return proc.memory_info().rss
