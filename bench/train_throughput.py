"""Training throughput on IMDB shards: textpipe's recipe vs the seed recipe.

Both train the same model (bidirectional LSTM, embed 128, hidden 128, batch 32)
for --steps optimizer steps on the same shards, in the same process:

- textpipe: length-bucketed batches (LengthBucketSampler) + the fused exact fast path
- seed:     random batches + pack_padded_sequence(enforce_sorted=False)

Prints real (non-pad) tokens/s of each and their ratio, median over --repeats.

    python bench/train_throughput.py --shards artifacts/imdb/shards --vocab artifacts/imdb/vocab/vocab.tsv
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.model import TextClassifier  # noqa: E402
from pipeline.sampler import LengthBucketSampler, collate  # noqa: E402
from pipeline.shards import ShardReader  # noqa: E402
from pipeline.train import make_optimizer  # noqa: E402


def run(model: nn.Module, data, batches, steps: int) -> float:
    opt = make_optimizer(torch.optim.Adam, model, 1e-3)  # the same optimizer for both recipes
    model.train()
    tokens, start = 0, None
    for i, batch in enumerate(batches[: steps + 3]):
        if i == 3:  # warm-up steps excluded
            tokens, start = 0, time.perf_counter()
        ids, lengths, labels = collate(data, batch)
        loss = nn.functional.cross_entropy(model(ids, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += int(lengths.sum())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bidirectional", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    reader = ShardReader(args.shards, vocab_path=args.vocab)
    data = reader.split("train")
    vocab_size = reader.manifest["vocab"]["size"]
    ours, seed = [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        sampler = LengthBucketSampler(data.lengths, data.buckets, seed=r)  # the shipped train.batch_size
        model = TextClassifier(vocab_size, len(reader.labels), bidirectional=bool(args.bidirectional), rnn_impl="fused")
        ours.append(run(model, data, sampler.batches(), args.steps))
        perm = np.random.default_rng(r).permutation(len(data))
        random_batches = [perm[i:i + 32].tolist() for i in range(0, len(perm), 32)]
        torch.manual_seed(r)
        model = TextClassifier(vocab_size, len(reader.labels), bidirectional=bool(args.bidirectional), rnn_impl="packed")
        seed.append(run(model, data, random_batches, args.steps))
    med = statistics.median
    print(json.dumps({
        "steps": args.steps, "repeats": args.repeats, "bidirectional": bool(args.bidirectional), "threads": torch.get_num_threads(),
        "textpipe_tokens_per_s": round(med(ours)), "seed_recipe_tokens_per_s": round(med(seed)),
        "ratio": round(med(o / s for o, s in zip(ours, seed)), 2),
    }, indent=2))


if __name__ == "__main__":
    main()
