"""The baseline every score stands beside: a linear bag-of-n-grams classifier, fastText-style.

It reads the same shards as the LSTM (the same tokens, truncation and splits)
and turns each row into its unigrams (vocabulary ids) and its bigrams, hashed
into :data:`BUCKETS` slots, so memory stays bounded whatever the data: a
feature table of ``(vocabulary + BUCKETS) x dim`` floats (``dim`` = the
classes, at most :data:`MAX_DIM`, then a linear layer to the classes). A row's
logits are the mean of its features' rows; a softmax over them is trained with
cross-entropy for :data:`EPOCHS` passes of shuffled batches, the feature table
by lazy Adam (only the rows a batch used, :mod:`pipeline.optim`) and the
learning rate decaying linearly to 0, as fastText's does.

Why torch and not scikit-learn or the fastText bindings: it is already
installed (no new dependency), it trains from the shards' token ids (no
second tokenizer to keep in step), it is repeatable for a seed and a thread
count, and IMDB's 25,000 reviews train in seconds (BENCHMARKS.md, "Baseline").

The evaluate stage fits it on the train split and scores it on the split it
scores the LSTM on (:mod:`pipeline.evaluate`), unless ``evaluate.baseline`` is
false. Saved beside the report as ``baseline.pt`` (``torch.save`` of
``{"format", "state_dict", "vocab_size", "buckets", "dim", "labels", "epochs"}``,
read with ``weights_only=True``).
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .cpu_share import ThreadGovernor
from .shards import ShardReader, SplitData

FORMAT = "textpipe-baseline/1"
BUCKETS = 1 << 20  # hashed bigram slots
MAX_DIM = 16  # feature rows are this wide at most (more classes: a linear layer after the mean)
EPOCHS = 5
BATCH_ROWS = 128
LR = 1.0  # Adagrad's, decaying linearly to 0 (screened on SST-2 5k and IMDB: BENCHMARKS.md)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # a 64-bit odd constant (the golden ratio's): spreads id pairs


def bigram_slots(left: np.ndarray, right: np.ndarray, vocab_size: int) -> np.ndarray:
    """Feature ids of the bigrams (left, right): ``vocab_size`` + a hash of the pair mod BUCKETS."""
    with np.errstate(over="ignore"):
        key = (left.astype(np.uint64) * _MIX) ^ right.astype(np.uint64)
        key = (key * _MIX) >> np.uint64(40)
    return (key % np.uint64(BUCKETS)).astype(np.int64) + vocab_size


def features(ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat feature ids, offsets) of a padded batch [rows, longest] for ``nn.EmbeddingBag``: each row's
    unigrams then its bigrams (an empty row is an empty bag: its logits are the bias)."""
    cols = np.arange(ids.shape[1])
    lengths = lengths.astype(np.int64)[:, None]
    slots = bigram_slots(ids[:, :-1], ids[:, 1:], vocab_size)
    keep = np.concatenate([cols < lengths, cols[:-1] < lengths - 1], axis=1)
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))[:-1]])
    return torch.from_numpy(np.concatenate([ids, slots], axis=1)[keep]), torch.from_numpy(offsets)


class NgramClassifier(nn.Module):
    """Mean of the row's feature vectors (+ a linear layer when there are more than MAX_DIM classes)."""

    def __init__(self, vocab_size: int, num_classes: int, buckets: int = BUCKETS):
        super().__init__()
        self.vocab_size, self.buckets = vocab_size, buckets
        self.dim = min(num_classes, MAX_DIM)
        self.embedding = nn.EmbeddingBag(vocab_size + buckets, self.dim, mode="mean", sparse=True)
        nn.init.zeros_(self.embedding.weight)
        self.head = nn.Linear(self.dim, num_classes) if num_classes > MAX_DIM else None
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, flat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        x = self.embedding(flat, offsets)
        return (self.head(x) if self.head is not None else x) + self.bias


def adagrad_step(model: NgramClassifier, squares: dict, lr: float) -> None:
    """Adagrad: each weight's step is ``lr`` over the root of its summed squared gradients, so rare
    n-grams learn as fast as common ones. The feature table's sparse gradient touches only the rows
    the batch used, in its weights and in its sums."""
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        acc = squares.setdefault(name, torch.zeros_like(p.data))
        if p.grad.is_sparse:
            g = p.grad.coalesce()
            rows, values = g.indices()[0], g.values()
            acc.index_add_(0, rows, values * values)
            p.data.index_add_(0, rows, values / (acc[rows].sqrt() + 1e-10), alpha=-lr)
        else:
            acc.add_(p.grad * p.grad)
            p.data.addcdiv_(p.grad, acc.sqrt() + 1e-10, value=-lr)
        p.grad = None


def fit_baseline(train: SplitData, vocab_size: int, num_classes: int, seed: int = 0,
                 governor: ThreadGovernor | None = None) -> tuple[NgramClassifier, dict]:
    """Train on every row of ``train``; (model, {"seconds", "epochs", "train_rows"})."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = NgramClassifier(vocab_size, num_classes)
    if model.head is not None:
        nn.init.normal_(model.embedding.weight, std=0.01)  # a linear layer after it needs a non-zero start
    rng = np.random.default_rng(seed)
    squares: dict[str, torch.Tensor] = {}
    rows = len(train)
    steps = EPOCHS * -(-rows // BATCH_ROWS)
    done = 0
    model.train()
    for _ in range(EPOCHS):
        order = rng.permutation(rows)
        for at in range(0, rows, BATCH_ROWS):
            idx = order[at:at + BATCH_ROWS]
            flat, offsets = features(train.padded(idx), train.lengths[idx], vocab_size)
            labels = torch.from_numpy(train.labels_of(idx))
            nn.functional.cross_entropy(model(flat, offsets), labels, reduction="sum").backward()
            adagrad_step(model, squares, LR * (1.0 - done / steps))  # decays linearly to 0
            done += 1
            if governor:
                governor.tick()
    return model.eval(), {"seconds": round(time.perf_counter() - start, 2), "epochs": EPOCHS, "train_rows": rows}


@torch.no_grad()
def predicted_batches(model: NgramClassifier, reader: ShardReader, split: str, batch_size: int,
                      max_tokens: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(actual, predicted) class ids of ``split`` batch by batch, in ``ShardReader.length_ordered`` order."""
    model.eval()
    for batch in reader.length_ordered(split, batch_size, max_tokens):
        yield batch.labels, model(*features(batch.ids, batch.lengths, model.vocab_size)).argmax(1).numpy()


def baseline_record(model: NgramClassifier, labels: list[str]) -> dict:
    return {"format": FORMAT, "state_dict": model.state_dict(), "vocab_size": model.vocab_size,
            "buckets": model.buckets, "dim": model.dim, "labels": list(labels), "epochs": EPOCHS}
