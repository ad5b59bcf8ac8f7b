"""Where each kept row of a dataset goes: its own split, a split carved from train, or nowhere.

A dataset without a validation (or test) split gets one carved from train (test first,
then validation from the rows left), stratified, with rows chosen at random with
``dataset.seed``; :func:`carve_counts` says how many rows of each class: ``fraction`` of the
rows in all, shared among the classes in proportion to their size. ``ingest.max_rows``
then keeps a random ``max_rows`` of each output split. :class:`RowRoutes` makes both
choices as the rows stream by, from the per-class row counts of a first pass, with one
:class:`~pipeline.selection.Selection` per class and carved split and one per sampled split:
exact counts, every subset equally likely, the same rows for the same data and seed however
it is batched, and memory that does not grow with the dataset.
"""
from __future__ import annotations

import numpy as np

from .core.schema import SPLITS
from .selection import Selection

LEFT_OUT = -1  # a row that max_rows leaves out

_CARVE, _SAMPLE = 0, 1  # the kinds of choice, kept apart in the seeds


def carve_counts(class_rows: np.ndarray, fraction: float, seed: int | list[int]) -> np.ndarray:
    """Rows per class that a carve of ``fraction`` of ``class_rows`` (rows per class) takes.

    In all, ``fraction`` of the rows, rounded half up, and at least one. They are shared among
    the classes in proportion to their size by largest remainder (Hamilton's method): each class
    gets the whole part of its share, then the rows left over go one each to the classes with
    the largest remainders (ties in an order drawn with ``seed``). A class never gives up its
    last row, which training needs, so classes of one row each give none. On large classes
    this is each class's share rounded; on small data the carve still holds the fraction asked
    for, where rounding each class's share alone gives nothing (10% of classes of 4 rows).
    """
    class_rows = np.asarray(class_rows, np.int64)
    rows = int(class_rows.sum())
    spare = np.maximum(class_rows - 1, 0)  # what a class can give and keep a row for training
    total = min(max(int(np.floor(rows * fraction + 0.5)), 1), int(spare.sum()))
    if total == 0:
        return np.zeros_like(class_rows)
    take = np.minimum(class_rows * total // rows, spare)  # whole shares, exact in integers
    remainder = class_rows * total % rows
    short = total - int(take.sum())
    ties = np.random.default_rng(seed).permutation(len(class_rows))
    for c in np.lexsort((ties, -remainder)):  # largest remainder first, to classes that can spare a row
        if short == 0:
            break
        if take[c] < spare[c]:
            take[c] += 1
            short -= 1
    return take


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
            index = SPLITS.index(target)
            take = carve_counts(left, fraction, [seed, _CARVE, index])
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
