"""Where each kept row of a dataset goes: its own split, a split carved from train, or nowhere.

A dataset without a validation (or test) split gets one carved from train: ``fraction``
of every class, rounded, chosen at random with ``dataset.seed`` (test first, then
validation from the rows left). ``ingest.max_rows`` then keeps a random ``max_rows`` of
each output split. :class:`RowRoutes` makes both choices as the rows stream by, from the
per-class row counts of a first pass, with one :class:`~pipeline.selection.Selection`
per class and carved split and one per sampled split: exact counts, every subset equally
likely, the same rows for the same data and seed however it is batched, and memory that
does not grow with the dataset.
"""
from __future__ import annotations

import numpy as np

from .core.schema import SPLITS
from .selection import Selection

LEFT_OUT = -1  # a row that max_rows leaves out

_CARVE, _SAMPLE = 0, 1  # the kinds of choice, kept apart in the seeds


class RowRoutes:
    """Routes for the kept rows of ``class_rows`` (per source split, rows per class id)."""

    def __init__(self, class_rows: dict[str, np.ndarray], fractions: dict[str, float], max_rows: int, seed: int):
        self.carved: dict[str, float] = {}
        self._carves: list[tuple[int, list[Selection]]] = []
        left = class_rows["train"].copy()
        per_class = {split: counts.copy() for split, counts in class_rows.items()}
        for target in ("test", "validation"):
            fraction = fractions.get(target, 0.0)
            if target in class_rows or fraction <= 0:
                continue
            take = np.array([int(round(n * fraction)) for n in left], np.int64)
            index = SPLITS.index(target)
            self._carves.append((index, [Selection(int(n), int(k), [seed, _CARVE, index, c])
                                         for c, (n, k) in enumerate(zip(left, take))]))
            self.carved[target] = fraction
            per_class[target] = take
            left -= take
        per_class["train"] = left
        self.outputs = [*class_rows, *(t for t in ("test", "validation") if t in self.carved)]
        self.class_rows = {split: per_class[split] for split in self.outputs}  # before max_rows
        self._samples = {SPLITS.index(out): Selection(int(n), max_rows, [seed, _SAMPLE, SPLITS.index(out)])
                         for out, n in ((o, self.class_rows[o].sum()) for o in self.outputs)
                         if max_rows and n > max_rows}

    def route(self, split: str, labels: np.ndarray) -> np.ndarray:
        """The next kept rows of ``split`` (their class ids, in order): each row's output split as its
        index in ``SPLITS``, or ``LEFT_OUT``."""
        dest = np.full(len(labels), SPLITS.index(split), np.int8)
        if split == "train":
            for target, selections in self._carves:
                still = np.flatnonzero(dest == SPLITS.index("train"))
                by_class = still[np.argsort(labels[still], kind="stable")]  # each class's rows in stream order
                classes, starts = np.unique(labels[by_class], return_index=True)
                for cls, rows in zip(classes, np.split(by_class, starts[1:])):
                    dest[rows[selections[cls].take(len(rows))]] = target
        for out in map(int, np.unique(dest)):
            if out in self._samples:
                rows = np.flatnonzero(dest == out)
                dest[rows[~self._samples[out].take(len(rows))]] = LEFT_OUT
        return dest
