"""Running a model over a whole split: what training's validation and the evaluate stage share.

It lives apart from both so that editing evaluation or report code does not
rerun training (DVC reruns a stage when a module it imports changes).

The split is read in length order a batch at a time (:meth:`ShardReader.length_ordered`),
so nothing per row is held, whatever the split's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .core.config import TrainConfig as _T
from .cpu_share import ThreadGovernor
from .shards import Batch, ShardReader


@dataclass
class Scored:
    """A batch and the model's class probabilities [B, classes] and summed loss for it."""

    batch: Batch
    probs: np.ndarray
    loss_sum: float

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@torch.no_grad()
def scored_batches(model: nn.Module, reader: ShardReader, split: str, batch_size: int,
                   device: torch.device, governor: ThreadGovernor | None = None) -> Iterator[Scored]:
    """The model's outputs over ``split``, batch by batch in length order (batches of at most
    ``batch_size`` rows and the default training token budget); ``governor`` re-decides the thread
    count between batches."""
    model.eval()
    for batch in reader.length_ordered(split, batch_size, _T.max_tokens):
        if governor:
            governor.tick()
        labels = torch.from_numpy(batch.labels).to(device)
        logits = model(torch.from_numpy(batch.ids).to(device), torch.from_numpy(batch.lengths))
        loss_sum = nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        yield Scored(batch, torch.softmax(logits.float(), dim=1).cpu().numpy(), loss_sum)


def score_split(model: nn.Module, reader: ShardReader, split: str, batch_size: int, device: torch.device,
                governor: ThreadGovernor | None = None) -> dict:
    """Mean loss, accuracy and row count over a whole split."""
    loss_sum, correct, rows = 0.0, 0, 0
    for scored in scored_batches(model, reader, split, batch_size, device, governor):
        loss_sum += scored.loss_sum
        correct += int((scored.predicted == scored.batch.labels).sum())
        rows += len(scored.batch.labels)
    return {"loss": loss_sum / max(rows, 1), "accuracy": correct / rows if rows else 0.0, "rows": rows}
