"""Benchmark the preprocessing stages on IMDB (50,000 reviews).

Runs ingest -> tokenize -> vocab -> bucket -> shard in a fresh Python process
on ../shared/data/imdb (as `dvc repro` runs a stage: spaCy's import is part of
the stage's time), and in the same run times the plain single-process
`spacy.blank("en").tokenizer.pipe` loop over the same texts. Prints JSON with
the median over --repeats runs.

    python bench/preprocess.py --repeats 3

With --scales, the same ingest -> shard on the train file concatenated N times
(same test file), each run in a fresh process, to show time grows linearly
and peak memory (sum of PSS over the process tree) stays flat:

    python bench/preprocess.py --scales 1,2,4 --repeats 3

The scaled train file has one row group per copy of IMDB's train split (25,000 rows); with
--one-row-group it is one row group, as pyarrow and pandas write up to 1,048,576 rows.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from bench.peak_memory import PeakRSS  # noqa: E402
from pipeline.buckets import bucket_stage  # noqa: E402
from pipeline.core.config import BucketConfig, DatasetConfig, ShardConfig, TokenizeConfig, VocabConfig  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.shards import shard_stage  # noqa: E402
from pipeline.tokenize import tokenize_dataset  # noqa: E402
from pipeline.vocab import vocab_stage  # noqa: E402


def plain_spacy_loop(data: Path) -> tuple[float, int]:
    import spacy

    texts = []
    for split in ("train", "test"):
        texts += pq.read_table(data / f"{split}.parquet", columns=["text"]).column("text").to_pylist()
    tokenizer = spacy.blank("en").tokenizer
    start = time.perf_counter()
    n = sum(len(doc) for doc in tokenizer.pipe(texts))
    return time.perf_counter() - start, n


def run_pipeline(data: Path, work: Path) -> dict:
    # the shipped defaults (pipeline.core.config), as `dvc repro` runs them
    cfg = DatasetConfig(name="imdb", source="files", path=str(data)).resolve()
    stages = {
        "ingest": lambda: ingest(cfg, work / "raw"),
        "tokenize": lambda: tokenize_dataset(work / "raw", work / "tokens", TokenizeConfig())[0],
        "vocab": lambda: vocab_stage(work / "tokens", work / "vocab", VocabConfig()),
        "bucket": lambda: bucket_stage(work / "tokens", work / "vocab" / "vocab.tsv", work / "ids", BucketConfig()),
        "shard": lambda: shard_stage(work / "ids", work / "vocab" / "vocab.tsv", work / "shards", ShardConfig()),
    }
    times, peaks, results = {}, {}, {}
    for name, run in stages.items():  # each stage's own peak: which one grows with the data
        with PeakRSS() as rss:
            t = time.perf_counter()
            results[name] = run()
            times[name] = time.perf_counter() - t
        peaks[name] = round(rss.peak / 2**20, 1)
    return {"seconds": times, "total": sum(times.values()), "tokens": results["tokenize"]["tokens"],
            "peak_mem_mb": max(peaks.values()), "stage_peak_mb": peaks}


def scaled_copy(data: Path, scale: int, dest: Path, one_row_group: bool = False) -> Path:
    """``dest`` holding the train file concatenated ``scale`` times (a row group per copy, or one
    row group) and the same test file."""
    dest.mkdir(parents=True, exist_ok=True)
    train = pq.read_table(data / "train.parquet")
    with pq.ParquetWriter(dest / "train.parquet", train.schema) as writer:
        if one_row_group:
            writer.write_table(pa.concat_tables([train] * scale), row_group_size=train.num_rows * scale)
        else:
            for _ in range(scale):
                writer.write_table(train)
    shutil.copy(data / "test.parquet", dest / "test.parquet")
    return dest


def pipeline_in_fresh_process(data: Path) -> dict:
    """run_pipeline in a new Python process, as `dvc repro` runs each stage: nothing (spaCy, torch)
    is imported yet, so the stage's own start-up is measured, not inherited from this process."""
    out = subprocess.run([sys.executable, __file__, "--data", str(data), "--pipeline-only"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def scale_series(data: Path, scales: list[int], repeats: int, one_row_group: bool = False) -> dict:
    """ingest -> shard at each scale, each run in a fresh process (its own peak memory); medians."""
    series = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            copy = scaled_copy(data, scale, Path(tmp) / f"x{scale}", one_row_group)
            runs = [pipeline_in_fresh_process(copy) for _ in range(repeats)]
            med = statistics.median
            series[f"x{scale}"] = {"train_rows": 25000 * scale, "seconds": round(med(r["total"] for r in runs), 2),
                                   "peak_mem_mb_pss_sum": round(med(r["peak_mem_mb"] for r in runs), 1),
                                   "runs_seconds": [round(r["total"], 2) for r in runs],
                                   "runs_peak_mb": [round(r["peak_mem_mb"], 1) for r in runs],
                                   "stage_peak_mb": {k: med(r["stage_peak_mb"][k] for r in runs)
                                                     for k in runs[0]["stage_peak_mb"]}}
    base = series[f"x{scales[0]}"]
    for key, row in series.items():
        row["time_ratio"] = round(row["seconds"] / base["seconds"], 3)
        row["memory_ratio"] = round(row["peak_mem_mb_pss_sum"] / base["peak_mem_mb_pss_sum"], 3)
    return series


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scales", default="", help="e.g. 1,2,4: ingest->shard on train x N (fresh process each)")
    ap.add_argument("--one-row-group", action="store_true", help="the scaled train file as one row group")
    ap.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"{data} not found: this benchmark needs the IMDB Parquet files (train/test)")
    if args.pipeline_only:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_pipeline(data, Path(tmp))))
        return
    if args.scales:
        scales = [int(x) for x in args.scales.split(",")]
        print(json.dumps({"machine": {"cores": os.cpu_count()}, "repeats": args.repeats,
                          "one_row_group": args.one_row_group,
                          "series": scale_series(data, scales, args.repeats, args.one_row_group)}, indent=2))
        return
    runs, plains = [], []
    for _ in range(args.repeats):
        runs.append(pipeline_in_fresh_process(data))
        plains.append(plain_spacy_loop(data))
    med = statistics.median
    plain_s = med(p[0] for p in plains)
    tok_s = med(r["seconds"]["tokenize"] for r in runs)
    print(json.dumps({
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "repeats": args.repeats,
        "seconds_per_stage": {k: round(med(r["seconds"][k] for r in runs), 2) for k in runs[0]["seconds"]},
        "ingest_to_shard_seconds": round(med(r["total"] for r in runs), 2),
        "tokens": runs[0]["tokens"],
        "tokenize_tokens_per_s": round(runs[0]["tokens"] / tok_s),
        "plain_spacy_loop_seconds": round(plain_s, 2),
        "plain_spacy_loop_tokens_per_s": round(plains[0][1] / plain_s),
        "tokenize_vs_plain_ratio": round(tok_s / plain_s, 3),
        "peak_memory_mb_pss_sum": round(max(r["peak_mem_mb"] for r in runs), 1),
        "stage_peak_mb": {k: statistics.median(r["stage_peak_mb"][k] for r in runs) for k in runs[0]["stage_peak_mb"]},
        "ru_maxrss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
