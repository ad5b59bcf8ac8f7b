"""Peak memory of the ingest, vocab, bucket, vectors, train and evaluate stages as a corpus grows, on synthetic data.

``--stage ingest``: the rows grow. A Parquet train split of ``--docs`` short texts
(1 to 20 common words, Zipf-distributed, so short ones repeat) with 4 classes, in
row groups of 20,000 rows; ingest (shipped params: 10% carved for validation,
duplicates counted) reads it.

``--stage vocab``: real corpora bring new tokens as they grow (names, numbers,
typos, URLs), so the distinct tokens of the train split grow with the corpus.
The token file holds ``--docs`` documents of 50 tokens: 25 drawn from 50,000
common words (Zipf-distributed) and 25 seen nowhere else, so ~25 × docs
distinct tokens; the vocab stage (shipped params: 40,000 ids) runs on it.

``--stage bucket``: the rows grow. ``--docs`` documents of 1 to 60 common words
(a vocabulary built first, not measured); the bucket stage (shipped params)
runs on them.

``--stage vectors``: the unlabelled corpus grows. A Parquet file of ``--docs``
documents of 50 common words (space-separated text) is the one ``vectors.corpora``
entry; the train split is 20,000 documents of 1 to 60 common words (a vocabulary
built first, not measured). The vectors stage runs word2vec (shipped params but
``method: word2vec`` and one epoch) on the train split's tokens and the corpus,
tokenized as the tokenize stage's params say.

``--stage train``: the train split grows. A Parquet train split of ``--docs`` short
texts like ingest's and a test split of 20,000 go through ingest -> shard (not
measured); the train stage's library call trains a small model (embeddings and
states of 32) for 20 steps: the sampler forms a whole epoch's batches and the
validation split (10% carved) is scored whatever the steps.

``--stage evaluate``: the test split grows. A Parquet test split of ``--docs`` short
texts like ingest's and a train split of 20,000 go through ingest -> shard and a
short training (not measured); the evaluate stage scores the test split and writes
its report and confusion pairs.

Each size runs in a fresh process; the JSON line per size gives the stage's
time and its peak memory (sum of PSS over the process tree, every 250 ms).

    python bench/stage_memory.py --stage ingest --docs 1000000 4000000 8000000
    python bench/stage_memory.py --stage vocab --docs 40000 160000 640000     # 1 M, 4 M, 16 M distinct tokens
    python bench/stage_memory.py --stage bucket --docs 1000000 4000000
    python bench/stage_memory.py --stage vectors --docs 100000 400000
    python bench/stage_memory.py --stage train --docs 250000 1000000 4000000
    python bench/stage_memory.py --stage evaluate --docs 250000 1000000 4000000
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline.core.config import TokenizeConfig  # noqa: E402
from pipeline.core.fileio import ArrowWriter, write_json  # noqa: E402
from pipeline.core.integrity import sealed_dir  # noqa: E402

COMMON, DOCS_PER_BATCH, VECTORS_TRAIN_DOCS = 50_000, 20_000, 20_000
SCHEMA = pa.schema([("tokens", pa.list_(pa.string())), ("label", pa.int64()), ("length", pa.int32())])


def words(first: int, n: int, letters: int = 7) -> pa.Array:
    """``n`` distinct lowercase strings, the base-26 digits of first .. first + n - 1 after a "w"."""
    digits = (np.arange(first, first + n, dtype=np.int64)[:, None] // 26 ** np.arange(letters)) % 26
    data = np.concatenate([np.full((n, 1), ord("w")), digits + ord("a")], axis=1).astype(np.uint8)
    offsets = np.arange(0, (n + 1) * (letters + 1), letters + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def batch_of(vocab: pa.Array, index: np.ndarray, lengths: np.ndarray) -> pa.Table:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    tokens = pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(index)))
    return pa.table({"tokens": tokens, "label": pa.array(np.arange(len(lengths)) % 2),
                     "length": pa.array(lengths.astype(np.int32))}, schema=SCHEMA)


def write_unlabelled(path: Path, docs: int) -> None:
    """A Parquet file of ``docs`` texts of 50 common words each (Zipf-distributed)."""
    rng = np.random.default_rng(1)
    common = words(26 ** 6, COMMON)
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())])) as writer:
        for start in range(0, docs, DOCS_PER_BATCH):
            n = min(DOCS_PER_BATCH, docs - start)
            lengths = np.full(n, 50)
            index = np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, COMMON - 1)
            text = pc.binary_join(batch_of(common, index, lengths).column("tokens"), " ")
            writer.write_table(pa.table({"text": text}))


def write_labelled(path: Path, docs: int) -> None:
    """A Parquet file of ``docs`` texts of 1 to 20 common words (Zipf-distributed) with labels 0-3."""
    rng = np.random.default_rng(2)
    common = words(26 ** 6, COMMON)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, pa.schema([("text", pa.string()), ("label", pa.int64())])) as writer:
        for start in range(0, docs, DOCS_PER_BATCH):
            n = min(DOCS_PER_BATCH, docs - start)
            lengths = rng.integers(1, 21, n)
            index = np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, COMMON - 1)
            text = pc.binary_join(batch_of(common, index, lengths).column("tokens"), " ")
            writer.write_table(pa.table({"text": text, "label": pa.array(rng.integers(0, 4, n))}))


def write_corpus(tokens_dir: Path, docs: int, stage: str) -> None:
    """A sealed tokenize folder whose train.arrow holds ``docs`` documents (see the module doc)."""
    if stage == "ingest":
        write_labelled(tokens_dir.parent / "data" / "train.parquet", docs)
        return
    if stage in ("evaluate", "train"):  # the other split: 20,000 rows
        big, small = (docs, VECTORS_TRAIN_DOCS) if stage == "train" else (VECTORS_TRAIN_DOCS, docs)
        prepare_shards(tokens_dir.parent, big, small, train=stage == "evaluate")
        return
    rng = np.random.default_rng(0)
    common = words(26 ** 6, COMMON)  # a range of its own: no new token equals a common one
    if stage == "vectors":
        write_unlabelled(tokens_dir.parent / "corpus.parquet", docs)
        docs = VECTORS_TRAIN_DOCS
    with sealed_dir(tokens_dir) as tmp, ArrowWriter(tmp / "train.arrow", SCHEMA) as writer:
        for start in range(0, docs, DOCS_PER_BATCH):
            n = min(DOCS_PER_BATCH, docs - start)
            if stage == "vocab":  # 25 common words then 25 new ones a doc
                lengths = np.full(n, 50)
                frequent = np.minimum(rng.zipf(1.2, (n, 25)) - 1, COMMON - 1)
                new = COMMON + np.arange(n * 25).reshape(n, 25)
                vocab = pa.concat_arrays([common, words(start * 25, n * 25)])
                index = np.concatenate([frequent, new], axis=1).ravel()
            else:
                lengths = rng.integers(1, 61, n)
                vocab, index = common, np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, COMMON - 1)
            writer.write(batch_of(vocab, index, lengths))
        write_json(tmp / "params.json", {"tokenize": TokenizeConfig().content_params()})


def prepare_shards(work: Path, train_docs: int, test_docs: int, train: bool) -> None:
    """ingest -> shard of a ``train_docs``-row train split and a ``test_docs``-row test split, and with
    ``train`` a model trained for 20 steps (not measured)."""
    from bench.ddp_throughput import build_shards

    write_labelled(work / "data" / "train.parquet", train_docs)
    write_labelled(work / "data" / "test.parquet", test_docs)
    build_shards(work / "data", work, name="bench")
    if train:
        train_model(work)


def train_model(work: Path) -> dict:
    """The train stage's library call with a small model, for 20 optimizer steps (one epoch's batches are
    formed, and the validation split scored, whatever the steps)."""
    from pipeline.core.config import TrainConfig
    from pipeline.train import Trainer

    cfg = TrainConfig(epochs=1, max_steps=20, embed_dim=32, hidden_size=32)
    trainer = Trainer(work / "shards", work / "vocab" / "vocab.tsv", work / "model", cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()


def measured(start: float, peak, **figures) -> dict:
    """A size's JSON line: the stage's time since ``start``, its peak memory (a finished ``PeakRSS``), its figures."""
    return {"seconds": round(time.perf_counter() - start, 1), "peak_mem_mb_pss_sum": round(peak.peak / 2**20), **figures}


def run_stage(stage: str, work: Path) -> dict:
    """The stage in this process (which runs nothing else), with its time and peak memory."""
    from bench.peak_memory import PeakRSS
    from pipeline.buckets import bucket_stage
    from pipeline.core.config import BucketConfig, DatasetConfig, IngestConfig, VectorsConfig, VocabConfig
    from pipeline.ingest import ingest
    from pipeline.vectors import vectors_stage
    from pipeline.vocab import vocab_stage

    if stage == "ingest":
        data = DatasetConfig(name="bench", source="files", path=str(work / "data")).resolve()
        start = time.perf_counter()
        with PeakRSS() as peak:
            stats = ingest(data, work / "raw", IngestConfig())
        return measured(start, peak, rows=stats["rows"],
                        repeated_train_rows=stats["duplicates"]["train"]["repeated_rows"])
    if stage == "train":
        start = time.perf_counter()
        with PeakRSS() as peak:
            result = train_model(work)
        return measured(start, peak, val_acc=result["val_acc"])
    if stage == "evaluate":
        from pipeline.core.config import EvaluateConfig
        from pipeline.evaluate import evaluate_stage

        start = time.perf_counter()
        with PeakRSS() as peak:
            metrics = evaluate_stage(work / "shards", work / "vocab" / "vocab.tsv", work / "model", work / "raw",
                                     work / "eval", EvaluateConfig(), work / "confusion.csv")
        return measured(start, peak, rows=metrics["rows"], accuracy=metrics["accuracy"])
    if stage != "vocab":
        vocab_stage(work / "tokens", work / "vocab", VocabConfig())
    start = time.perf_counter()
    with PeakRSS() as peak:
        if stage == "vocab":
            metrics = vocab_stage(work / "tokens", work / "vocab", VocabConfig())
            figures = {"train_types": metrics["train_types"], "size": metrics["size"]}
        elif stage == "vectors":
            cfg = VectorsConfig(method="word2vec", epochs=1, corpora=[str(work / "corpus.parquet")])
            stats = vectors_stage(work / "tokens", work / "vocab" / "vocab.tsv", work / "vectors", cfg)
            figures = {"tokens": stats["tokens"], "vocab_words_covered": stats["vocab_words_covered"]}
        else:
            stats = bucket_stage(work / "tokens", work / "vocab" / "vocab.tsv", work / "ids", BucketConfig())
            figures = {"padding_waste": [stats["splits"]["train"][k] for k in ("padding_waste_random",
                                                                                "padding_waste_bucketed")]}
    return measured(start, peak, **figures)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("ingest", "vocab", "bucket", "vectors", "train", "evaluate"), default="vocab")
    ap.add_argument("--docs", type=int, nargs="+", default=[40_000, 160_000, 640_000])
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)  # internal: run the stage on this folder
    args = ap.parse_args()
    if args.work:
        print(json.dumps(run_stage(args.stage, args.work)))
        return
    for docs in args.docs:
        with tempfile.TemporaryDirectory() as tmp:
            write_corpus(Path(tmp) / "tokens", docs, args.stage)
            out = subprocess.run([sys.executable, __file__, "--stage", args.stage, "--work", tmp],
                                 capture_output=True, text=True, check=True).stdout
            print(json.dumps({"stage": args.stage, "docs": docs, **json.loads(out)}), flush=True)


if __name__ == "__main__":
    main()
