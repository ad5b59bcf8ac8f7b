"""Training throughput: textpipe's recipe (lazy or dense Adam) vs the seed recipe, per dataset.

Every recipe trains the same model (the shipped defaults: bidirectional LSTM, embed 128,
hidden 128, max pooling) for --steps optimizer steps on the same shards, in the same
process, one after the other, repeat after repeat. textpipe's batches are the shipped
token budget (train.max_tokens, train.batch_size rows at most; or --max-tokens/--batch-size);
the seed recipe's are 32 random rows, as it had:

- textpipe:       length-bucketed batches (LengthBucketSampler) + the fused exact fast path
                  + lazy Adam on the embedding (``train.embedding_grad: auto`` on one process)
- textpipe-dense: the same with the dense fused Adam for every parameter
- textpipe-bf16:  textpipe with ``train.precision: bf16`` (the forward pass autocast to bfloat16)
- seed:           random batches + pack_padded_sequence(enforce_sorted=False) + the dense fused Adam
- kernel:         the ceiling, not a recipe: the fused LSTM kernel alone (both directions, forward and
                  backward) over the padded shape of textpipe's batches; no embedding, pooling, loss or
                  optimizer. textpipe ÷ kernel says how close a training step comes to it.

Prints real (non-pad) tokens/s of each, median over --repeats, the ratios to the
seed recipe, and (with several datasets) each dataset's textpipe tokens/s over the
first one's: SST-2 ÷ IMDB is the short-text figure of BENCHMARKS.md.

    python bench/train_throughput.py --data imdb=artifacts/imdb --data sst2=artifacts/sst2 --steps 60 --repeats 3
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.openmp import set_wait_policy  # noqa: E402

set_wait_policy()  # as the textpipe entry point does, before torch loads libgomp
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pipeline.core.config import TrainConfig  # noqa: E402
from pipeline.core.errors import PipelineError  # noqa: E402
from pipeline.model import TextClassifier, check_precision, step_autocast  # noqa: E402
from pipeline.optim import ClassifierOptimizer, clip_grad_norm  # noqa: E402
from pipeline.sampler import LengthBucketSampler, collate  # noqa: E402
from pipeline.shards import ShardReader  # noqa: E402

RECIPES = ("textpipe", "textpipe-dense", "seed", "kernel", "textpipe-bf16")


def recipe_precision(recipe: str) -> str:
    """The train.precision a recipe's steps run in."""
    return "bf16" if recipe == "textpipe-bf16" else "fp32"


def one_setup(recipe: str, reader: ShardReader, data, seed: int, batch_size: int, max_tokens: int):
    """(model, optimizer, batches) of a recipe: the shipped model, fresh weights from ``seed``
    (the kernel: that model's recurrent layer alone, and no optimizer)."""
    # batches come from numpy generators, so torch's initialisation below does not depend on them
    if recipe == "seed":
        perm = np.random.default_rng(seed).permutation(len(data))
        batches = [perm[i:i + 32].tolist() for i in range(0, len(perm), 32)]
    else:
        batches = LengthBucketSampler(data.lengths, data.buckets, batch_size, max_tokens, seed=seed).batches()
    torch.manual_seed(seed)
    model = TextClassifier(reader.manifest["vocab"]["size"], len(reader.labels),
                           rnn_impl="packed" if recipe == "seed" else "fused")
    if recipe == "kernel":
        return model.rnn, None, batches
    model.embedding.sparse = recipe in ("textpipe", "textpipe-bf16")
    return model, ClassifierOptimizer(model, "adam", 1e-3), batches


def train_step(model: nn.Module, opt: ClassifierOptimizer, data, batch, precision: str = "fp32") -> int:
    """One optimizer step on ``batch``, as the train stage runs it; its real (non-pad) token count."""
    ids, lengths, labels = collate(data, batch)
    with step_autocast(torch.device("cpu"), precision):
        logits = model(ids, lengths)
    loss = nn.functional.cross_entropy(logits.float(), labels)
    opt.zero_grad()
    loss.backward()
    clip_grad_norm(opt.params, 5.0)
    opt.step()
    return int(lengths.sum())


def kernel_step(lstm: nn.LSTM, data, batch) -> int:
    """The fused LSTM kernel's forward and backward pass (inputs and weights) over a batch's padded
    shape [rows, longest row], on inputs that need no gather or lookup; its real (non-pad) token
    count, as train_step returns."""
    lengths = data.lengths[np.asarray(batch)]
    x = torch.ones(len(lengths), int(lengths.max()), lstm.input_size, requires_grad=True)
    lstm.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    out.sum().backward()
    return int(lengths.sum())


def one(recipe: str, reader: ShardReader, data, steps: int, seed: int, batch_size: int, max_tokens: int) -> float:
    """Real tokens/s of ``steps`` optimizer steps of a recipe, after 3 warm-up steps."""
    model, opt, batches = one_setup(recipe, reader, data, seed, batch_size, max_tokens)
    model.train()
    precision = recipe_precision(recipe)

    def step(batch) -> int:
        return kernel_step(model, data, batch) if recipe == "kernel" else train_step(model, opt, data, batch, precision)

    for batch in batches[:3]:  # warm-up steps excluded
        step(batch)
    start = time.perf_counter()
    tokens = sum(step(batch) for batch in batches[3:steps + 3])
    return tokens / (time.perf_counter() - start)


def fail(message: str) -> None:
    """A user error: one line on stderr, exit status 2."""
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(2)


def refusal(recipe: str) -> str | None:
    """Why this CPU cannot run a recipe (the train stage's own precision check), or None."""
    try:
        check_precision(torch.device("cpu"), recipe_precision(recipe))
    except PipelineError as e:
        return f"{recipe}: {e}"
    return None


def chosen_recipes(option: str | None) -> list[str]:
    """The recipes to run: those named, checked before any work, or every one this CPU can run."""
    if option is None:
        return [r for r in RECIPES if refusal(r) is None]
    recipes = option.split(",")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        fail(f"unknown recipe {', '.join(unknown)}; choose from {','.join(RECIPES)}")
    for why in filter(None, map(refusal, recipes)):
        fail(why)
    return recipes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", action="append", required=True, metavar="NAME=ARTIFACTS_DIR",
                    help="a dataset's artifacts folder (with shards/ and vocab/); repeat for several")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="textpipe recipes (seed: 32)")
    ap.add_argument("--max-tokens", type=int, default=TrainConfig.max_tokens, help="textpipe recipes: padded-token budget")
    ap.add_argument("--recipes", default=None,
                    help=f"comma-separated, of {','.join(RECIPES)}; default: every one this CPU runs "
                         "(textpipe-bf16 needs native bfloat16: AVX512-BF16 or AMX)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = all cores (the shipped train.threads)")
    args = ap.parse_args()
    recipes = chosen_recipes(args.recipes)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    datasets = {}
    for item in args.data:
        name, folder = item.split("=", 1)
        reader = ShardReader(Path(folder) / "shards", vocab_path=Path(folder) / "vocab" / "vocab.tsv")
        datasets[name] = (reader, reader.split("train"))
    speeds: dict[str, dict[str, list[float]]] = {n: {r: [] for r in recipes} for n in datasets}
    for repeat in range(args.repeats):
        for name, (reader, data) in datasets.items():
            for recipe in recipes:
                speeds[name][recipe].append(one(recipe, reader, data, args.steps, repeat, args.batch_size, args.max_tokens))
    med = statistics.median
    first = next(iter(datasets))
    report = {"steps": args.steps, "repeats": args.repeats, "threads": torch.get_num_threads(),
              "batch_size": args.batch_size, "max_tokens": args.max_tokens, "datasets": {}}

    def ratio(by: dict, a: str, b: str, other: dict | None = None) -> float | None:
        other = other or by
        if a not in by or b not in other:
            return None
        return round(med(x / y for x, y in zip(by[a], other[b])), 2)

    for name, by in speeds.items():
        report["datasets"][name] = {
            **{f"{r}_tokens_per_s": round(med(v)) for r, v in by.items()},
            "textpipe_over_seed": ratio(by, "textpipe", "seed"),
            "kernel_over_seed": ratio(by, "kernel", "seed"),
            "textpipe_over_kernel": ratio(by, "textpipe", "kernel"),
            "dense_over_seed": ratio(by, "textpipe-dense", "seed"),
            "lazy_over_dense": ratio(by, "textpipe", "textpipe-dense"),
            "bf16_over_seed": ratio(by, "textpipe-bf16", "seed"),
            "bf16_over_fp32": ratio(by, "textpipe-bf16", "textpipe"),
            f"textpipe_over_{first}": ratio(by, "textpipe", "textpipe", speeds[first]),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
