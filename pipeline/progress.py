"""Progress and log lines: on stderr, so a stage's stdout carries only its JSON summary.

In a terminal, tqdm draws the bars. Where nobody watches a terminal (CI, nohup,
``dvc exp run --queue``) tqdm is silent, so long loops also print a
:class:`Heartbeat` line every ``HEARTBEAT_SECONDS``.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def log(message: str) -> None:
    """One line on stderr that does not break a progress bar."""
    tqdm.write(message, file=sys.stderr)


HEARTBEAT_SECONDS = 30.0


class Heartbeat:
    """A progress line at most every ``every`` seconds when stderr is not a terminal (tqdm covers terminals)."""

    def __init__(self, what: str, total: int, every: float = HEARTBEAT_SECONDS):
        self.what, self.total, self.every = what, total, every
        self.enabled = not sys.stderr.isatty()
        self.last = time.monotonic()

    def tick(self, done: int, detail: str = "") -> None:
        if not self.enabled or time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        log(f"{self.what}: {done}/{self.total} ({done / max(self.total, 1):.0%}) {detail}".rstrip())
