"""The recurrent text classifier and its two exact execution paths.

``packed``: ``pack_padded_sequence`` -> ``nn.LSTM`` (or GRU/RNN). Each
sequence stops at its own last token. This is the reference, and the fast
choice on CUDA.

``fused``: the same module's weights run through the fused (cuDNN-style,
oneDNN on CPU) kernel on the padded batch, which on CPU is 10-15x faster than
packing. It gives the same results as packing:

- forward direction: padding comes after each sequence, so outputs at valid
  steps are exact; the final state is the output at the last valid step;
- backward direction: each sequence is reversed within its own length, run
  forward with the reverse weights, and reversed back; its final state is the
  output at step 0;
- bidirectional stacks are run layer by layer by hand (a layer's backward
  input needs both directions of the layer below).

Outputs at padded steps are ignored by every pooling.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .core.config import TrainConfig as _T
from .core.errors import PipelineError
from .core.schema import PAD_ID

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
POOLINGS = ("last", "max", "mean")


def native_bf16_cpu() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse a training precision the device cannot run, before any work (PipelineError).

    ``bf16`` runs on CUDA devices with bfloat16 and on CPUs where oneDNN has native bfloat16 (AVX512-BF16
    or AMX). Elsewhere oneDNN has no bfloat16 LSTM to run (the step would fail), and emulation would be
    slower than fp32 anyway.
    """
    if precision == "fp32":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PipelineError("train.precision: bf16 needs a CUDA device with bfloat16 support; set train.precision: fp32")
    if device.type not in ("cpu", "cuda"):
        raise PipelineError(f"train.precision: bf16 runs on cpu or cuda, not {device.type}; "
                            "set train.precision: fp32 or train.device: cpu")
    if device.type == "cpu" and not native_bf16_cpu():
        raise PipelineError("train.precision: bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX), "
                            "and this one has none; set train.precision: fp32")


def step_autocast(device: torch.device, precision: str) -> torch.autocast:
    """The context of a training step's forward pass. ``bf16``: autocast runs the fused recurrent kernel and
    the linear layer in bfloat16; the weights, their gradients, the optimizer and the loss stay fp32, and
    scoring (validation, evaluate, predict) runs in fp32. ``fp32``: a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _fused_single_layer(rnn: nn.RNNBase, x: torch.Tensor, layer: int, reverse: bool) -> torch.Tensor:
    """One layer, one direction of ``rnn`` over batch-first ``x`` with the fused kernel; returns outputs."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    weights = [getattr(rnn, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    batch = x.size(0)
    h0 = x.new_zeros(1, batch, rnn.hidden_size)
    mode = rnn.mode
    if mode == "LSTM":
        out, _, _ = torch._VF.lstm(x, (h0, h0), weights, True, 1, 0.0, rnn.training, False, True)
    elif mode == "GRU":
        out, _ = torch._VF.gru(x, h0, weights, True, 1, 0.0, rnn.training, False, True)
    elif mode == "RNN_TANH":
        out, _ = torch._VF.rnn_tanh(x, h0, weights, True, 1, 0.0, rnn.training, False, True)
    else:
        out, _ = torch._VF.rnn_relu(x, h0, weights, True, 1, 0.0, rnn.training, False, True)
    return out


def _reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Flat row index (into [B*T]) that reverses each row's first ``lengths[b]`` steps; padding stays put."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(0)
    lens = lengths.unsqueeze(1)
    within = torch.where(t < lens, lens - 1 - t, t)
    return (within + torch.arange(lengths.size(0), device=lengths.device).unsqueeze(1) * steps).reshape(-1)


class _Permute(torch.autograd.Function):
    """Rows of [B*T, H] picked by a permutation that is its own inverse (a reversal), so the backward
    pass is the same cheap row copy instead of the scatter-add that ``gather`` needs."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None


def _reverse(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    batch, steps, size = x.shape
    return _Permute.apply(x.reshape(batch * steps, size), index).view(batch, steps, size)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` steps of batch-first ``x``; padding stays in place."""
    return _reverse(x.contiguous(), _reversal_index(lengths.to(x.device), x.size(1)))


def run_fused(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor,
              ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs [B, T, H*dirs] exact at valid steps, final state of the last layer [B, H*dirs]).

    With ``ordered=False`` the last layer's backward-direction outputs are left reversed within each
    sequence: the same set of vectors per sequence, one reversal cheaper, which is all that max or
    mean pooling over valid steps (or the final state) needs.
    """
    lengths = lengths.to(x.device)
    batch_idx = torch.arange(x.size(0), device=x.device)
    last = lengths - 1
    if not rnn.bidirectional:
        h0 = x.new_zeros(rnn.num_layers, x.size(0), rnn.hidden_size)
        hx: Any = (h0, h0) if rnn.mode == "LSTM" else h0
        out, _ = rnn(x, hx)
        return out, out[batch_idx, last]
    index = _reversal_index(lengths, x.size(1))
    layer_in = x.contiguous()
    for layer in range(rnn.num_layers):
        fwd = _fused_single_layer(rnn, layer_in, layer, reverse=False)
        bwd_reversed = _fused_single_layer(rnn, _reverse(layer_in, index), layer, reverse=True)
        is_last = layer == rnn.num_layers - 1
        out = torch.cat([fwd, bwd_reversed if is_last and not ordered else _reverse(bwd_reversed, index)], dim=2)
        if not is_last and rnn.dropout > 0:
            out = nn.functional.dropout(out, rnn.dropout, rnn.training)
        layer_in = out
    # the backward direction's final state is its output at step 0, i.e. at `last` before reversing back
    final = torch.cat([fwd[batch_idx, last], bwd_reversed[batch_idx, last]], dim=1)
    return out, final


def run_packed(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference path through ``pack_padded_sequence``; same return values as :func:`run_fused`."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, h = rnn(packed)
    h_n = h[0] if isinstance(h, tuple) else h
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    final = torch.cat([h_n[-2], h_n[-1]], dim=1) if rnn.bidirectional else h_n[-1]
    return out, final


class TextClassifier(nn.Module):
    """Embedding -> LSTM/GRU/RNN -> sentence vector (last state, max or mean) -> logits."""

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = _T.embed_dim, hidden_size: int = _T.hidden_size,
                 num_layers: int = _T.num_layers, bidirectional: bool = _T.bidirectional, dropout: float = 0.0,
                 rnn_type: str = _T.rnn_type, pooling: str = _T.pooling, rnn_impl: str = "fused"):
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be one of {', '.join(RNN_TYPES)}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.rnn = RNN_TYPES[rnn_type](embed_dim, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                                       dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.pooling = pooling
        self.rnn_impl = rnn_impl
        self.word_dropout = 0.0  # a training setting (train.word_dropout), not part of a checkpoint

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sentence vectors [B, H*dirs] for right-padded ``ids`` [B, T]."""
        x = self.embedding(ids)
        if self.training and self.word_dropout > 0:  # whole tokens dropped: their vectors zeroed
            x = x * (torch.rand(ids.shape, device=ids.device) >= self.word_dropout).unsqueeze(2).to(x.dtype)
        x = self.dropout(x)
        if self.rnn_impl == "packed":
            out, final = run_packed(self.rnn, x, lengths)
        else:
            out, final = run_fused(self.rnn, x, lengths, ordered=False)
        if self.pooling == "last":
            return final
        mask = (torch.arange(ids.size(1), device=ids.device).unsqueeze(0) < lengths.to(ids.device).unsqueeze(1)).unsqueeze(2)
        if self.pooling == "max":
            return out.masked_fill(~mask, float("-inf")).max(dim=1).values
        # at least fp32: a bfloat16 sum over hundreds of steps would lose digits (train.precision: bf16)
        out = out.to(torch.promote_types(out.dtype, torch.float32))
        return (out * mask).sum(dim=1) / lengths.to(out.device).unsqueeze(1).to(out.dtype)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encode(ids, lengths)))
