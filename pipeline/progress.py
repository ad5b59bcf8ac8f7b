"""Progress and log lines: on stderr, so a stage's stdout carries only its JSON summary."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def log(message: str) -> None:
    """One line on stderr that does not break a progress bar."""
    tqdm.write(message, file=sys.stderr)
