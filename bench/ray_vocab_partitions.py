"""The Ray vocab stage's group-by with Ray's default 200 hash partitions against
`ray_engine.shuffle_partitions` (no more partitions than the token file has record batches), in one
local Ray (2 CPUs, 127.0.0.1), alternating, on 600 IMDB rows per split; the vocabularies must be equal.

    python bench/ray_vocab_partitions.py --repeats 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402

from pipeline import ray_engine  # noqa: E402
from pipeline.core.config import DatasetConfig, IngestConfig, TokenizeConfig, VocabConfig  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.tokenize import tokenize_dataset  # noqa: E402
from pipeline.vocab import vocab_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ingest(DatasetConfig(name="imdb", source="files", path=args.data).resolve(), tmp / "raw", IngestConfig(max_rows=args.rows))
        tokenize_dataset(tmp / "raw", tmp / "tokens", TokenizeConfig(workers=1))
        ways = {"Ray's 200 partitions": lambda n: 200, "shuffle_partitions": ray_engine.shuffle_partitions}
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        try:
            for repeat in range(args.repeats):
                for i, (name, parts) in enumerate(ways.items()):
                    ray_engine.shuffle_partitions = parts
                    t = time.perf_counter()
                    vocab_stage(tmp / "tokens", tmp / f"vocab{repeat}-{i}", VocabConfig(engine="ray"), count=ray_engine.count_tokens)
                    seconds[name].append(time.perf_counter() - t)
        finally:
            ray.shutdown()
        same = len({(tmp / f"vocab{r}-{i}" / "vocab.tsv").read_bytes() for r in range(args.repeats) for i in range(2)}) == 1
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"vocabularies equal: {same}")


if __name__ == "__main__":
    main()
