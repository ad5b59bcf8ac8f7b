"""Accuracy of the shipped train defaults (or overrides) on datasets prepared by the pipeline.

For each --data NAME=ARTIFACTS_DIR (a folder with shards/ and vocab/, e.g. artifacts/sst2
after `dvc exp run -S dataset.name=sst2 ...`) and each --seeds value: train with
TrainConfig's defaults plus any --set key=value, the embedding started from the vectors
stage's output in that folder when it trained any (as the train stage does; --no-stage-vectors
starts from random vectors, --set vectors=FILE from a file of your own), keep the best epoch
on the validation split (as the train stage does), and report its accuracy on the test split.
One JSON line per run, then the median test accuracy per dataset.

    python bench/accuracy.py --data sst2=artifacts/sst2 --data ag_news=artifacts/ag_news --seeds 1 2 3
    python bench/accuracy.py --data sst2=artifacts/sst2 --set pooling=last --set max_tokens=0 --set batch_size=32
    python bench/accuracy.py --data ag_news=artifacts/ag_news --no-stage-vectors      # random start
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.openmp import set_wait_policy  # noqa: E402

set_wait_policy()  # as the textpipe entry point does, before torch loads libgomp
from pipeline.core.config import TrainConfig  # noqa: E402
from pipeline.inference import score_split  # noqa: E402
from pipeline.train import Trainer  # noqa: E402


def run(artifacts: Path, overrides: dict, seed: int, stage_vectors: bool) -> dict:
    cfg = TrainConfig.from_block({**overrides, "seed": seed})
    vectors_dir = artifacts / "vectors" if stage_vectors and not cfg.vectors else None
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        trainer = Trainer(artifacts / "shards", artifacts / "vocab" / "vocab.tsv", out, cfg, vectors_dir=vectors_dir)
        result = trainer.fit()
        seconds = time.perf_counter() - t0
        trainer.model.load_state_dict(trainer.best_state)
        test = score_split(trainer.model, trainer.reader, "test", cfg.eval_batch_size, trainer.device)
        trainer.close()
    return {"seed": seed, "val_acc": round(result["val_acc"], 4), "test_acc": round(test["accuracy"], 4),
            "best_epoch": result["best_epoch"], "epochs_run": len(trainer.history), "train_seconds": round(seconds, 1),
            "tokens_per_s": result["tokens_per_s"], "padding_waste": trainer.history[0]["padding_waste"],
            "batch_rows": trainer.batch_rows, "vectors": str(trainer.vectors) if trainer.vectors else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", action="append", required=True, metavar="NAME=ARTIFACTS_DIR")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a train param (YAML value)")
    ap.add_argument("--no-stage-vectors", action="store_true", help="start from random vectors, not the vectors stage's")
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    summary = {}
    for spec in args.data:
        name, path = spec.split("=", 1)
        runs = []
        for seed in args.seeds:
            row = {"data": name, **overrides, **run(Path(path), overrides, seed, not args.no_stage_vectors)}
            print(json.dumps(row), flush=True)
            runs.append(row)
        summary[name] = {"median_test_acc": statistics.median(r["test_acc"] for r in runs),
                         "median_train_seconds": statistics.median(r["train_seconds"] for r in runs)}
    print(json.dumps({"overrides": overrides, "stage_vectors": not args.no_stage_vectors, "seeds": args.seeds,
                      "summary": summary}))


if __name__ == "__main__":
    main()
