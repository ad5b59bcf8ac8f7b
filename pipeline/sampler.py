"""Length-sorted batching.

:class:`LengthBucketSampler` forms batches from rows of similar length within
each length bucket, then shuffles the order of the batches. Each epoch draws
from ``seed + epoch``, and a small multiplicative noise on the lengths before
sorting (AllenNLP's ``padding_noise``) makes batches differ between epochs.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .config import TrainConfig as _T
from .shards import SplitData


class LengthBucketSampler:
    """Yield lists of row indices; every row exactly once per epoch.

    A batch holds at most ``batch_size`` rows and, if ``max_tokens`` > 0, at
    most ``max_tokens`` padded tokens (rows x longest row); a single row longer
    than ``max_tokens`` forms a batch of its own.
    """

    def __init__(self, lengths: np.ndarray, buckets: np.ndarray | None = None, batch_size: int = _T.batch_size,
                 max_tokens: int = _T.max_tokens, padding_noise: float = _T.padding_noise, shuffle: bool = True,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.buckets = np.zeros(len(self.lengths), dtype=np.int64) if buckets is None else np.asarray(buckets)
        self.batch_size, self.max_tokens = int(batch_size), int(max_tokens)
        self.padding_noise, self.shuffle, self.seed = float(padding_noise), shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        keys = self.lengths.astype(np.float64)
        if self.shuffle and self.padding_noise > 0:
            keys = keys * (1.0 + rng.uniform(-self.padding_noise, self.padding_noise, size=len(keys)))
        out: list[list[int]] = []
        for bucket in np.unique(self.buckets):
            rows = np.flatnonzero(self.buckets == bucket)
            if self.shuffle:
                rows = rng.permutation(rows)  # random tie order
            rows = rows[np.argsort(keys[rows], kind="stable")]
            out.extend(self._cut(rows))
        if self.shuffle:
            order = rng.permutation(len(out))
            out = [out[i] for i in order]
        return out

    def _cut(self, rows: np.ndarray) -> list[list[int]]:
        batches, current, longest = [], [], 0
        for r in rows.tolist():
            length = int(self.lengths[r])
            grown = max(longest, length)
            too_many = len(current) >= self.batch_size
            too_big = self.max_tokens and current and grown * (len(current) + 1) > self.max_tokens
            if too_many or too_big:
                batches.append(current)
                current, grown = [], length
            current.append(r)
            longest = grown
        if current:
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def by_length_desc(data: SplitData, indices: list[int]) -> np.ndarray:
    """``indices`` ordered as :func:`collate` stacks them: longest first, ties in given order."""
    idx = np.asarray(indices)
    return idx[np.argsort(-data.lengths[idx], kind="stable")]


def collate(data: SplitData, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [B, T] int64 right-padded with 0, lengths [B], labels [B]), rows in :func:`by_length_desc` order."""
    idx = by_length_desc(data, indices)
    return torch.from_numpy(data.padded(idx)), torch.from_numpy(data.lengths[idx]), torch.from_numpy(data.labels[idx])
