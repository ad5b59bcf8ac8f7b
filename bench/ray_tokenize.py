"""Tokenize throughput: the local engine (2 worker processes) next to the Ray Data engine at 1 and 2
actors, in one run, on IMDB train + test (50,000 reviews).

Each Ray run starts a local Ray for the stage and stops it after, as `tokenize.engine: ray` does
without a cluster, so its startup is part of the figure: that is Ray's overhead on one machine.

    python bench/ray_tokenize.py --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import DatasetConfig, TokenizeConfig  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.tokenize import tokenize_dataset  # noqa: E402

ENGINES = {"local, 2 processes": TokenizeConfig(workers=2), "ray, 1 actor": TokenizeConfig(engine="ray", workers=1),
           "ray, 2 actors": TokenizeConfig(engine="ray", workers=2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in ENGINES}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        ingest(DatasetConfig(name="imdb", source="files", path=args.data).resolve(), raw)
        for _ in range(args.repeats):
            for name, cfg in ENGINES.items():
                start = time.perf_counter()
                stats, _ = tokenize_dataset(raw, Path(tmp) / "tokens", cfg)
                runs[name].append((time.perf_counter() - start, stats["tokens"]))
    local = statistics.median(s for s, _ in runs["local, 2 processes"])
    print(json.dumps({name: {"seconds": round(statistics.median(s for s, _ in r), 2),
                             "tokens_per_s": round(r[0][1] / statistics.median(s for s, _ in r)),
                             "vs_local": round(statistics.median(s for s, _ in r) / local, 3),
                             "runs_seconds": [round(s, 2) for s, _ in r]} for name, r in runs.items()}, indent=2))


if __name__ == "__main__":
    main()
