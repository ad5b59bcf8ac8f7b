"""Optimizers for the classifier: dense fused Adam, or lazy (sparse) Adam for the embedding.

With short texts the work per optimizer step is small, and the dense Adam
update of the whole embedding (40,000 x 128 = 5.1 M parameters, three passes
over them per step) dominates although a batch touches a few hundred rows.
``train.embedding_grad: sparse`` makes the embedding produce sparse gradients
(``nn.Embedding(sparse=True)``) and updates it with :class:`LazyAdam` (the update of
``torch.optim.SparseAdam``), which touches only the rows the batch used ("lazy Adam": a row's moments and
weights change only in steps that use it), while every other parameter keeps
the fused dense Adam. The two differ in maths, not only in speed: dense Adam
keeps moving a row by its momentum after the batch that used it; lazy Adam
does not. ``tests/test_train.py`` shows the two reach the same accuracy on
the demo, and that with plain SGD (where the maths is the same) sparse and
dense gradients give the same weights.

``auto`` (``TrainConfig.sparse_embedding``) picks sparse on one process
(DistributedDataParallel reduces dense gradients) without weight decay
(lazy Adam has none; AdamW's decoupled decay would touch every row).
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


BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which textpipe has always trained with
EPS = 1e-8


class _OneGroupAdam:
    """What the two Adams below share: one param group, each parameter's state (``step``, ``exp_avg``,
    ``exp_avg_sq``) created at its first update, and torch.optim's state-dict layout, so a resume point
    written by ``torch.optim.Adam``/``SparseAdam`` (textpipe before these classes) loads in them.

    Not ``torch.optim.Optimizer`` subclasses: constructing one imports ``torch._dynamo`` (its
    ``add_param_group``, ``zero_grad``, ``step`` and ``state_dict`` are wrapped to keep dynamo out of
    them), which costs every training process 2-3 s of start-up on a 2-core CPU, as long as ``import
    torch`` itself. The updates are torch's own, bit for bit (``tests/test_model.py``)."""

    STEP_DTYPE: torch.dtype | None = None  # None: an int; else a tensor of this dtype on the param's device

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float = 0.0):
        self.params = list(params)
        self.param_groups = [{"lr": lr, "betas": BETAS, "eps": EPS, "weight_decay": weight_decay, "params": self.params}]
        self.state: dict[torch.Tensor, dict] = {}

    def _state(self, p: torch.Tensor) -> dict:
        if p not in self.state:
            step = 0 if self.STEP_DTYPE is None else torch.zeros((), dtype=self.STEP_DTYPE, device=p.device)
            self.state[p] = {"step": step, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return self.state[p]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {i: dict(self.state[p]) for i, p in enumerate(self.params) if p in self.state},
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state: dict) -> None:
        (group,) = state["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"optimizer state has {len(group['params'])} parameters, this model {len(self.params)}")
        self.param_groups[0].update({k: tuple(v) if k == "betas" else v for k, v in group.items()
                                     if k in ("lr", "base_lr", "betas", "eps", "weight_decay")})
        self.state = {}
        for saved, p in zip(group["params"], self.params):
            if saved in state["state"]:
                s = state["state"][saved]
                step = s["step"] if self.STEP_DTYPE is None else torch.as_tensor(s["step"]).to(self.STEP_DTYPE).to(p.device)
                self.state[p] = {"step": step, "exp_avg": s["exp_avg"].to(p), "exp_avg_sq": s["exp_avg_sq"].to(p)}


class FusedAdam(_OneGroupAdam):
    """Adam, or AdamW with ``decoupled``, on dense gradients through the single-kernel update that
    ``torch.optim.Adam(fused=True)`` runs (``torch._fused_adam_``/``torch._fused_adamw_``): about 20%
    faster per step on CPU with a 40k-word embedding than the default multi-tensor update."""

    STEP_DTYPE = torch.float32

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(params, lr, weight_decay)
        self.kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

    @staticmethod
    def runs(params: list[torch.Tensor]) -> bool:
        """Whether this torch has the fused kernels for these parameters' devices."""
        return hasattr(torch, "_fused_adam_") and all(p.device.type in ("cpu", "cuda") for p in params)

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        by_device: dict[tuple, list[list[torch.Tensor]]] = {}
        for p in self.params:
            if p.grad is not None:
                s = self._state(p)
                lists = by_device.setdefault((p.device, p.dtype), [[], [], [], [], []])
                for each, t in zip(lists, (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"])):
                    each.append(t)
        for params, grads, exp_avgs, exp_avg_sqs, steps in by_device.values():
            torch._foreach_add_(steps, 1)
            self.kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                        beta1=group["betas"][0], beta2=group["betas"][1], weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


class LazyAdam(_OneGroupAdam):
    """``torch.optim.SparseAdam``'s update ("lazy Adam") for sparse gradients: a row's moments and
    weights change only in the steps whose batch used it, in the same operations and order as torch's
    ``sparse_adam``, so the same bits."""

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        for p in self.params:
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise RuntimeError("LazyAdam takes sparse gradients: build the embedding with sparse=True")
            s = self._state(p)
            s["step"] += 1
            grad = p.grad.coalesce()  # the update is not linear: each row once
            rows, values = grad._indices(), grad._values()
            if values.numel() == 0:
                continue

            def sparse(v: torch.Tensor) -> torch.Tensor:
                return grad.new(rows, v, grad.size())

            # moment <- moment + (1 - beta) * (new - moment), on the used rows only
            old_avg = s["exp_avg"].sparse_mask(grad)._values()
            avg_step = values.sub(old_avg).mul_(1 - beta1)
            s["exp_avg"].add_(sparse(avg_step))
            old_sq = s["exp_avg_sq"].sparse_mask(grad)._values()
            sq_step = values.pow(2).sub_(old_sq).mul_(1 - beta2)
            s["exp_avg_sq"].add_(sparse(sq_step))
            numer = avg_step.add_(old_avg)  # the rows' new moments, without reading them back
            denom = sq_step.add_(old_sq).sqrt_().add_(group["eps"])
            step_size = group["lr"] * math.sqrt(1 - beta2 ** s["step"]) / (1 - beta1 ** s["step"])
            p.add_(sparse(-step_size * numer.div_(denom)))


def _dense_adam(params: list, lr: float, weight_decay: float, decoupled: bool):
    """:class:`FusedAdam` where the fused kernels run; elsewhere (e.g. MPS) torch.optim's Adam(W)."""
    if FusedAdam.runs(params):
        return FusedAdam(params, lr, weight_decay, decoupled)
    opt_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    try:
        return opt_cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return opt_cls(params, lr=lr, weight_decay=weight_decay)


class ClassifierOptimizer:
    """One optimizer interface over dense Adam(W) and, when the embedding is sparse, lazy Adam for it."""

    def __init__(self, model: nn.Module, optimizer: str, lr: float, weight_decay: float = 0.0):
        self.params = [p for p in model.parameters() if p.requires_grad]
        embedding = model.embedding.weight
        self.sparse = bool(model.embedding.sparse)
        dense = [p for p in self.params if not (self.sparse and p is embedding)]
        if optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be adam or adamw, not {optimizer!r}")
        self.parts = {"dense": _dense_adam(dense, lr, weight_decay, decoupled=optimizer == "adamw")}
        if self.sparse:
            self.parts["sparse"] = LazyAdam([embedding], lr=lr)
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
