"""Optimizers for the classifier: dense fused Adam, or lazy (sparse) Adam for the embedding.

With short texts the work per optimizer step is small, and the dense Adam
update of the whole embedding (40,000 x 128 = 5.1 M parameters, three passes
over them per step) dominates although a batch touches a few hundred rows.
``train.embedding_grad: sparse`` makes the embedding produce sparse gradients
(``nn.Embedding(sparse=True)``) and updates it with ``torch.optim.SparseAdam``,
which touches only the rows the batch used ("lazy Adam": a row's moments and
weights change only in steps that use it), while every other parameter keeps
the fused dense Adam. The two differ in maths, not only in speed: dense Adam
keeps moving a row by its momentum after the batch that used it; lazy Adam
does not. ``tests/test_train.py`` shows the two reach the same accuracy on
the demo, and that with plain SGD (where the maths is the same) sparse and
dense gradients give the same weights.

``auto`` (``TrainConfig.sparse_embedding``) picks sparse on one process
(DistributedDataParallel reduces dense gradients) without weight decay
(SparseAdam has none; AdamW's decoupled decay would touch every row).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

SCHEDULES = ("constant", "linear", "cosine")


def schedule_factor(schedule: str, warmup: float, progress: float) -> float:
    """The learning rate's multiplier at ``progress`` (0 at the first step, 1 at the end of the planned
    epochs): a linear warm-up from 0 over the first ``warmup`` of training, then ``constant`` 1,
    ``linear`` decay to 0, or ``cosine`` (half a cosine) to 0. A pure function of progress, so a run
    resumed mid-epoch continues the same curve without any scheduler state."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    if schedule == "constant":
        return 1.0
    rest = (progress - warmup) / (1.0 - warmup)
    return 1.0 - rest if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * rest))


def _dense_adam(opt_cls: type, params: list, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam/AdamW with the fused single-kernel update where this torch build has it (about 20% faster
    per step on CPU with a 40k-word embedding than the default multi-tensor update)."""
    try:
        return opt_cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return opt_cls(params, lr=lr, weight_decay=weight_decay)


class ClassifierOptimizer:
    """One optimizer interface over dense Adam(W) and, when the embedding is sparse, SparseAdam for it."""

    def __init__(self, model: nn.Module, opt_cls: type, lr: float, weight_decay: float = 0.0):
        self.params = [p for p in model.parameters() if p.requires_grad]
        embedding = model.embedding.weight
        self.sparse = bool(model.embedding.sparse)
        dense = [p for p in self.params if not (self.sparse and p is embedding)]
        self.parts: dict[str, torch.optim.Optimizer] = {"dense": _dense_adam(opt_cls, dense, lr, weight_decay)}
        if self.sparse:
            self.parts["sparse"] = torch.optim.SparseAdam([embedding], lr=lr)
        for group in self._groups():
            group["base_lr"] = lr  # the learning rate before the schedule's factor

    def _groups(self) -> Iterator[dict]:
        """Every param group of every part."""
        for opt in self.parts.values():
            yield from opt.param_groups

    def zero_grad(self) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    @property
    def lr(self) -> float:
        """The base learning rate (``train.lr`` times every ``scale_lr`` so far), before the schedule."""
        return self.parts["dense"].param_groups[0]["base_lr"]

    def scale_lr(self, factor: float) -> None:
        """Multiply every part's base learning rate by ``factor`` (kept in the state dict, so a resumed
        run goes on with it); the next ``set_schedule`` applies it."""
        for group in self._groups():
            group["base_lr"] *= factor
            group["lr"] *= factor

    def set_schedule(self, factor: float) -> None:
        """Learning rate = base learning rate x ``factor`` (see :func:`schedule_factor`) for the next step."""
        for group in self._groups():
            group["lr"] = group["base_lr"] * factor

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        if sorted(state) != sorted(self.parts):
            raise ValueError(f"optimizer state has {sorted(state)}, this run uses {sorted(self.parts)}")
        for name, opt in self.parts.items():
            opt.load_state_dict(state[name])


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` that also takes sparse gradients (the total L2 norm over all,
    a sparse gradient counted by its coalesced values, so repeated rows add up as in the dense one)."""
    grads = [p.grad for p in params if p.grad is not None]
    dense = [g for g in grads if not g.is_sparse]
    sparse = [g for g in grads if g.is_sparse]
    if not sparse:
        return nn.utils.clip_grad_norm_(params, max_norm)
    squares = [g.coalesce().values().pow(2).sum() for g in sparse]
    if dense:
        squares.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in dense])).pow(2))
    total = torch.stack(squares).sum().sqrt()
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return total
