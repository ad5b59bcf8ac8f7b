"""Predict throughput (texts/s) of an exported model on the IMDB test set: one text per forward pass
(what `predict` did before) against batches of 256, longest first (what it does now), same process.

Trains nothing of note: the shards are built with the shipped preprocessing defaults and the model
is trained for --steps steps with the shipped architecture (throughput does not depend on accuracy).

    python bench/predict_throughput.py --texts 5000 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.openmp import set_wait_policy  # noqa: E402

set_wait_policy()  # as the textpipe entry point does, before torch loads libgomp
import torch  # noqa: E402

from bench.ddp_throughput import build_shards  # noqa: E402
from pipeline.core.config import TrainConfig  # noqa: E402
from pipeline.predict import Predictor, export_model  # noqa: E402
from pipeline.train import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--texts", type=int, default=5000, help="IMDB test reviews to classify")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "imdb"
        build_shards(Path(args.data), art)
        trainer = Trainer(art / "shards", art / "vocab" / "vocab.tsv", art / "model",
                          TrainConfig(epochs=1, max_steps=args.steps, patience=0))
        trainer.fit()
        trainer.close()
        export_model(art / "model" / "model.pt", art / "vocab" / "vocab.tsv", art / "raw", Path(tmp) / "m.textpipe")
        predictor = Predictor.load(Path(tmp) / "m.textpipe")
        texts = pq.read_table(art / "raw" / "test.parquet").column("text").to_pylist()[: args.texts]
        runs: dict[str, list[float]] = {"batch 1": [], "batch 256": []}
        for _ in range(args.repeats):
            for name, size in (("batch 1", 1), ("batch 256", 256)):
                start = time.perf_counter()
                predictor.predict(texts, batch_size=size)
                runs[name].append(len(texts) / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({"texts": len(texts), **{k: {"texts_per_s": round(m, 1), "runs": [round(x, 1) for x in runs[k]]}
                                            for k, m in med.items()},
                      "speedup": round(med["batch 256"] / med["batch 1"], 2)}, indent=2))


if __name__ == "__main__":
    main()
