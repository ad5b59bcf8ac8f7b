"""Training throughput with 1 process x 2 threads vs 2 processes x 1 thread (torchrun, gloo) on IMDB.

Builds the IMDB shards once (shipped preprocessing defaults), then runs `textpipe train`
for --steps optimizer steps per process count, --repeats times, and prints the medians
of real tokens/s and rows/s over the training loop (validation excluded). This machine
has 2 cores, so the two layouts share the same hardware: the point is that the
distributed path is correct and costs little, not that it is faster here.

    python bench/ddp_throughput.py --steps 60 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.buckets import bucket_stage  # noqa: E402
from pipeline.core.config import BucketConfig, DatasetConfig, ShardConfig, TokenizeConfig, VocabConfig  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.shards import shard_stage  # noqa: E402
from pipeline.tokenize import tokenize_dataset  # noqa: E402
from pipeline.vocab import vocab_stage  # noqa: E402


def build_shards(data: Path, art: Path, name: str = "imdb") -> None:
    """ingest -> shard of the files in ``data`` into ``art`` with the shipped params."""
    ingest(DatasetConfig(name=name, source="files", path=str(data)).resolve(), art / "raw")
    tokenize_dataset(art / "raw", art / "tokens", TokenizeConfig())
    vocab_stage(art / "tokens", art / "vocab", VocabConfig())
    bucket_stage(art / "tokens", art / "vocab" / "vocab.tsv", art / "ids", BucketConfig())
    shard_stage(art / "ids", art / "vocab" / "vocab.tsv", art / "shards", ShardConfig())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (each process takes one batch a step)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    layouts = {"1 process x 2 threads": {"nproc": 1, "threads": 2}, "2 processes x 1 thread": {"nproc": 2, "threads": 1}}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        build_shards(Path(args.data), project / "artifacts" / "imdb")
        for _ in range(args.repeats):
            for name, layout in layouts.items():
                train = {**layout, "epochs": 1, "max_steps": args.steps, "patience": 0}
                (project / "params.yaml").write_text(yaml.safe_dump({"dataset": {"name": "imdb", "source": "files",
                                                                                 "path": args.data}, "train": train}))
                out = subprocess.run(["textpipe", "train"], cwd=project, capture_output=True, text=True, check=True).stdout
                run = json.loads(out)
                results.setdefault(name, []).append(run)
    med = statistics.median
    print(json.dumps({name: {"tokens_per_s": round(med(r["tokens_per_s"] for r in runs)),
                             "rows_per_s": round(med(r["rows_per_s"] for r in runs), 1),
                             "runs_tokens_per_s": [round(r["tokens_per_s"]) for r in runs]}
                      for name, runs in results.items()}, indent=2))


if __name__ == "__main__":
    main()
