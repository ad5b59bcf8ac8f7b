"""Where a training step's time goes: torch.profiler over textpipe's training recipe.

Trains the shipped model (bench/train_throughput.py's recipe, same shards, same
batches) for --steps steps under the profiler and prints the share of the
profiled wall time by operator group (self CPU time of the operators; the rest
is Python and batch assembly), and the top operators. The seed recipe is not
profiled: its packed LSTM runs a few operators per time step, and the profiler's
record of them grew past 24 GB within 5 IMDB steps here.

    python bench/profile_train.py --data artifacts/imdb --steps 40

The profiler adds a few microseconds per operator, so the absolute tokens/s here
are below bench/train_throughput.py's; the shares are what this is for.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_throughput import one_setup, train_step  # noqa: E402  (sets the wait policy before torch loads)
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from pipeline.shards import ShardReader  # noqa: E402

# operator-name fragments -> group, first match wins
GROUPS = (
    ("LSTM cell maths (fused kernel, forward + backward)", ("mkldnn_rnn", "_thnn_fused_lstm", "lstm", "rnn")),
    ("matrix products (input projections, classifier)", ("addmm", "mm", "bmm", "linear", "matmul")),
    ("optimizer (Adam / lazy Adam)", ("adam", "_foreach", "sparse", "coalesce", "optimizer")),
    ("embedding lookup and its gradient", ("embedding", "index_select", "index_add", "scatter")),
    ("reversal, pooling, padding masks", ("index", "max", "cat", "where", "masked", "gather", "flip", "pack", "pad")),
    ("gradient clipping, loss", ("norm", "cross_entropy", "nll", "log_softmax", "clamp")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other tensor operators"


def profile_recipe(recipe: str, reader: ShardReader, data, steps: int, batch_size: int, max_tokens: int) -> dict:
    model, opt, batches = one_setup(recipe, reader, data, 0, batch_size, max_tokens)
    model.train()
    for batch in batches[:3]:  # warm-up, outside the profile
        train_step(model, opt, data, batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        tokens = sum(train_step(model, opt, data, batch) for batch in batches[3:steps + 3])
        wall = time.perf_counter() - start
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    shares: dict[str, float] = {}
    for e in events:
        group = group_of(e.key)
        shares[group] = shares.get(group, 0.0) + e.self_cpu_time_total / 1e6
    ops = sum(shares.values())
    shares["Python, batch assembly, profiler (wall minus operators)"] = max(wall - ops, 0.0)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {"tokens_per_s_profiled": round(tokens / wall),
            "share_of_wall": {k: round(v / wall, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
            "top_operators": {e.key: round(e.self_cpu_time_total / 1e6 / wall, 3) for e in top}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a dataset's artifacts folder (with shards/ and vocab/)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--recipes", default="textpipe", help="textpipe and/or textpipe-dense")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=None)
    args = ap.parse_args()
    from pipeline.core.config import TrainConfig

    torch.set_num_threads(os.cpu_count() or 1)
    reader = ShardReader(Path(args.data) / "shards", vocab_path=Path(args.data) / "vocab" / "vocab.tsv")
    data = reader.split("train")
    batch_size = args.batch_size or TrainConfig.batch_size
    max_tokens = TrainConfig.max_tokens if args.max_tokens is None else args.max_tokens
    report = {r: profile_recipe(r, reader, data, args.steps, batch_size, max_tokens) for r in args.recipes.split(",")}
    print(json.dumps({"steps": args.steps, "threads": torch.get_num_threads(), **report}, indent=2))


if __name__ == "__main__":
    main()
