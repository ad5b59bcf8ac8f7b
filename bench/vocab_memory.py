"""The vocab stage's peak memory on corpora with ever more distinct tokens.

Real corpora bring new tokens as they grow (names, numbers, typos, URLs), so the
number of distinct tokens in the train split grows with the corpus. This writes
a synthetic token file of ``--docs`` documents of 50 tokens each: 25 drawn from
50,000 common words (Zipf-distributed) and 25 tokens seen nowhere else, so the
split has ~25 × docs distinct tokens. It then runs the vocab stage (default
params: 40,000 ids) on it in a fresh process and prints its time and peak
memory (sum of PSS over the process tree) per size, one JSON line each.

    python bench/vocab_memory.py --docs 160000 640000     # 4 M and 16 M distinct tokens
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline.fileio import ArrowWriter  # noqa: E402
from pipeline.integrity import sealed_dir  # noqa: E402

COMMON, COMMON_PER_DOC, NEW_PER_DOC, DOCS_PER_BATCH = 50_000, 25, 25, 20_000


def words(first: int, n: int, letters: int = 7) -> pa.Array:
    """``n`` distinct lowercase strings, the base-26 digits of first .. first + n - 1 after a "w"."""
    digits = (np.arange(first, first + n, dtype=np.int64)[:, None] // 26 ** np.arange(letters)) % 26
    data = np.concatenate([np.full((n, 1), ord("w")), digits + ord("a")], axis=1).astype(np.uint8)
    offsets = np.arange(0, (n + 1) * (letters + 1), letters + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def write_corpus(tokens_dir: Path, docs: int) -> None:
    """A sealed tokenize folder whose train.arrow holds ``docs`` documents."""
    rng = np.random.default_rng(0)
    common = words(26 ** 6, COMMON)  # a range of its own: no new token equals a common one
    per_doc = COMMON_PER_DOC + NEW_PER_DOC
    schema = pa.schema([("tokens", pa.list_(pa.string())), ("label", pa.int64())])
    with sealed_dir(tokens_dir) as tmp, ArrowWriter(tmp / "train.arrow", schema) as writer:
        for start in range(0, docs, DOCS_PER_BATCH):
            n = min(DOCS_PER_BATCH, docs - start)
            frequent = np.minimum(rng.zipf(1.2, (n, COMMON_PER_DOC)) - 1, COMMON - 1)
            new = COMMON + np.arange(n * NEW_PER_DOC).reshape(n, NEW_PER_DOC)
            vocab = pa.concat_arrays([common, words(start * NEW_PER_DOC, n * NEW_PER_DOC)])
            index = np.concatenate([frequent, new], axis=1).ravel()
            values = vocab.take(pa.array(index))
            lists = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * per_doc, per_doc, dtype=np.int32)), values)
            writer.write(pa.table({"tokens": lists, "label": pa.array(np.zeros(n, np.int64))}))


def run_stage(tokens_dir: Path, out: Path) -> dict:
    """The vocab stage in this process, with its peak memory (this process only runs it)."""
    from bench.peak_memory import PeakRSS
    from pipeline.config import VocabConfig
    from pipeline.vocab import vocab_stage

    start = time.perf_counter()
    with PeakRSS() as peak:
        metrics = vocab_stage(tokens_dir, out, VocabConfig())
    return {"seconds": round(time.perf_counter() - start, 1), "peak_mem_mb_pss_sum": round(peak.peak / 2**20),
            "train_types": metrics["train_types"], "size": metrics["size"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, nargs="+", default=[160_000, 640_000])
    ap.add_argument("--stage", type=Path, help=argparse.SUPPRESS)  # internal: run the stage on this folder
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.stage.parent / "vocab")))
        return
    for docs in args.docs:
        with tempfile.TemporaryDirectory() as tmp:
            tokens_dir = Path(tmp) / "tokens"
            write_corpus(tokens_dir, docs)
            out = subprocess.run([sys.executable, __file__, "--stage", str(tokens_dir)],
                                 capture_output=True, text=True, check=True).stdout
            row = {"docs": docs, "tokens": docs * (COMMON_PER_DOC + NEW_PER_DOC), **json.loads(out)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
