"""Exact random subsets of a stream of items, in memory that does not grow with the stream.

:class:`Selection` decides, for ``n`` items that arrive in order, which ``k`` of them are
taken: exactly ``k``, every ``k``-subset equally likely, and the same subset for the same
seed however the items are batched when they arrive. It deals the stream in blocks of
``BLOCK`` items. A block's share is drawn from the hypergeometric distribution of what is
left (``k_left`` to take among ``n_left``), then its items are chosen uniformly within the
block: the sequential form of drawing ``k`` of ``n`` without replacement, one block in
memory at a time. Ingest carves its validation and test splits and draws ``max_rows``
samples with it.
"""
from __future__ import annotations

import numpy as np

BLOCK = 8192
HYPERGEOMETRIC_LIMIT = 10**9  # numpy's hypergeometric needs fewer good and fewer bad items than this


class Selection:
    """Which ``k`` of ``n`` items, arriving in order, are taken; see the module docstring."""

    def __init__(self, n: int, k: int, seed: int | list[int]):
        if not 0 <= k <= n:
            raise ValueError(f"cannot take {k} of {n} items")
        self.n_left, self.k_left = n, k
        self._rng = np.random.default_rng(seed)
        self._block = np.zeros(0, bool)  # the current block's choices not yet handed out

    def take(self, m: int) -> np.ndarray:
        """A boolean mask over the next ``m`` items: True for the items taken."""
        parts = []
        while m > 0:
            if not len(self._block):
                self._block = self._next_block()
            part, self._block = self._block[:m], self._block[m:]
            parts.append(part)
            m -= len(part)
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    def _next_block(self) -> np.ndarray:
        size = min(BLOCK, self.n_left)
        if size == 0:
            raise ValueError("more items than the selection was made for")
        count = self._block_count(size)
        block = np.zeros(size, bool)
        if count == size:
            block[:] = True
        elif count:
            block[self._rng.choice(size, count, replace=False)] = True
        self.n_left -= size
        self.k_left -= count
        return block

    def _block_count(self, size: int) -> int:
        """How many of the next ``size`` items are taken: hypergeometric, as when drawing without
        replacement. Past numpy's limit (a billion items of one kind left) a binomial draw with the
        same mean stands in; the bounds below still make the total exactly ``k``."""
        good, bad = self.k_left, self.n_left - self.k_left
        if size == self.n_left:
            return good
        if good < HYPERGEOMETRIC_LIMIT and bad < HYPERGEOMETRIC_LIMIT:
            return int(self._rng.hypergeometric(good, bad, size)) if good and bad else (size if not bad else 0)
        count = int(self._rng.binomial(size, good / self.n_left))
        return min(max(count, size - bad, 0), good, size)
