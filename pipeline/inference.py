"""Running a model over a whole split: what training's validation and the evaluate stage share.

It lives apart from both so that editing evaluation or report code does not
rerun training (DVC reruns a stage when a module it imports changes).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .sampler import LengthBucketSampler, by_length_desc, collate
from .shards import SplitData


@torch.no_grad()
def predict_split(model: nn.Module, data: SplitData, batch_size: int, device: torch.device) -> dict:
    """Loss, accuracy, predictions and probabilities over a whole split, in the split's row order."""
    model.eval()
    sampler = LengthBucketSampler(data.lengths, None, batch_size, shuffle=False)
    probs = np.zeros((len(data), model.head.out_features), dtype=np.float32)
    loss_sum = 0.0
    for batch in sampler:
        order = by_length_desc(data, batch)
        ids, lengths, labels = collate(data, batch)
        logits = model(ids.to(device), lengths)
        loss_sum += nn.functional.cross_entropy(logits, labels.to(device), reduction="sum").item()
        probs[order] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    preds = probs.argmax(axis=1)
    return {
        "loss": loss_sum / max(len(data), 1),
        "accuracy": float((preds == data.labels).mean()) if len(data) else 0.0,
        "pred": preds,
        "probs": probs,
    }
