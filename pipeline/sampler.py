"""Length-sorted batching.

:class:`LengthBucketSampler` forms batches from rows of similar length within
each length bucket, then shuffles the order of the batches. Each epoch draws
from ``seed + epoch``, and a small multiplicative noise on the lengths before
sorting (AllenNLP's ``padding_noise``) makes batches differ between epochs.

A batch is a numpy array of row indices, a view into one array holding the
epoch's order: no Python object per row, so an epoch's batches take 8 bytes a row.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .core.config import TrainConfig as _T
from .shards import SplitData


class LengthBucketSampler:
    """Yield arrays of row indices; every row exactly once per epoch.

    A batch holds at most ``batch_size`` rows and, if ``max_tokens`` > 0, at
    most ``max_tokens`` padded tokens (rows x longest row); a single row longer
    than ``max_tokens`` forms a batch of its own.
    """

    def __init__(self, lengths: np.ndarray, buckets: np.ndarray | None = None, batch_size: int = _T.batch_size,
                 max_tokens: int = _T.max_tokens, padding_noise: float = _T.padding_noise, shuffle: bool = True,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = np.asarray(lengths)  # as given (the shards' int32): no copy per row
        self.buckets = np.zeros(len(self.lengths), dtype=np.int8) if buckets is None else np.asarray(buckets)
        self.batch_size, self.max_tokens = int(batch_size), int(max_tokens)
        self.padding_noise, self.shuffle, self.seed = float(padding_noise), shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + self.epoch)
        keys = self.lengths.astype(np.float64)
        if self.shuffle and self.padding_noise > 0:
            noise = rng.uniform(-self.padding_noise, self.padding_noise, size=len(keys))
            noise += 1.0
            keys *= noise  # in place: two arrays of 8 bytes a row at most
            del noise
        order, bounds = [], [0]
        for bucket in np.unique(self.buckets):
            rows = np.flatnonzero(self.buckets == bucket)
            if self.shuffle:
                rows = rng.permutation(rows)  # random tie order
            rows = rows[np.argsort(keys[rows], kind="stable")]
            start = bounds[-1]
            bounds.extend(start + cut for cut in self._cuts(self.lengths[rows]))
            order.append(rows)
        del keys
        flat = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
        out = [flat[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def _cuts(self, lengths: np.ndarray) -> list[int]:
        """Where each batch of rows in this order ends: at most ``batch_size`` rows, and a row joins only if
        the batch, padded to its longest row so far, stays within ``max_tokens`` (a first row always joins)."""
        ends, start, n = [], 0, len(lengths)
        fill = np.arange(1, self.batch_size + 1)
        while start < n:
            window = lengths[start:start + self.batch_size].astype(np.int64)
            take = len(window)
            if self.max_tokens:
                over = np.maximum.accumulate(window) * fill[:take] > self.max_tokens
                over[0] = False
                take = int(np.argmax(over)) if over.any() else take
            start += take
            ends.append(start)
        return ends

    def lone_rows(self) -> int:
        """Rows longer than half of ``max_tokens``: no second row fits beside one, so each is a batch
        of its own (an optimizer step on one text) however the rows are ordered."""
        if not self.max_tokens or self.batch_size == 1:
            return 0
        return int(np.count_nonzero(self.lengths.astype(np.int64) * 2 > self.max_tokens))

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def by_length_desc(data: SplitData, indices: np.ndarray) -> np.ndarray:
    """``indices`` ordered as :func:`collate` stacks them: longest first, ties in given order."""
    idx = np.asarray(indices)
    return idx[np.argsort(-data.lengths[idx], kind="stable")]


def collate(data: SplitData, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [B, T] int64 right-padded with 0, lengths [B] int64, labels [B] int64), rows in
    :func:`by_length_desc` order."""
    idx = by_length_desc(data, indices)
    return (torch.from_numpy(data.padded(idx)), torch.from_numpy(data.lengths[idx].astype(np.int64)),
            torch.from_numpy(data.labels_of(idx)))
