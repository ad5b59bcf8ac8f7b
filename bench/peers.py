"""Peers on the same splits: textpipe's LSTM, textpipe's baseline and fastText; accuracy and seconds.

For each --data NAME=ARTIFACTS_DIR (a dataset's artifacts folder: tokens/, vocab/, shards/ and,
for the LSTM's word vectors, vectors/), every model trains on the train split and is scored on
the split the evaluate stage scores (test, else validation):

- baseline: :func:`pipeline.baseline.fit_baseline` on the shards, as the evaluate stage fits it;
- fastText: ``fasttext.train_supervised`` (word bigrams, 25 epochs, lr 1.0 as its tutorial has them, 2 threads) on
  the same spaCy tokens (tokens/, before the vocabulary cap), installed for this bench only:
  ``pip install fasttext-numpy2``;
- lstm (``--lstm``): the train stage's Trainer with the shipped defaults for ``--seeds``, best
  epoch on validation, as ``textpipe train`` keeps it; the vectors stage's output when present.

    python bench/peers.py --data sst5k=artifacts/sst5k --data imdb=artifacts/imdb --lstm --seeds 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.openmp import set_wait_policy  # noqa: E402

set_wait_policy()  # as the textpipe entry point does, before torch loads libgomp
import numpy as np  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402

from pipeline.baseline import fit_baseline, predicted_batches  # noqa: E402
from pipeline.core.config import TrainConfig  # noqa: E402
from pipeline.shards import ShardReader  # noqa: E402


def eval_split(reader: ShardReader) -> str:
    return "test" if "test" in reader.splits else "validation"


def baseline(art: Path) -> dict:
    reader = ShardReader(art / "shards")
    split = eval_split(reader)
    model, info = fit_baseline(reader.split("train"), int(reader.manifest["vocab"]["size"]), len(reader.labels))
    right = rows = 0
    for actual, predicted in predicted_batches(model, reader, split, 256):
        right += int((actual == predicted).sum())
        rows += len(actual)
    return {"accuracy": round(right / rows, 4), "seconds": info["seconds"]}


def fasttext_file(tokens: Path, out: Path) -> np.ndarray:
    with ipc.open_file(tokens) as f:
        table = f.read_all()
    labels = table.column("label").to_numpy()
    with open(out, "w", encoding="utf-8") as w:
        for words, label in zip(table.column("tokens").to_pylist(), labels):
            w.write(f"__label__{label} " + " ".join(t.replace(" ", "_") for t in words if t.strip()) + "\n")
    return labels


def fasttext_run(art: Path, split: str) -> dict:
    import fasttext

    with tempfile.TemporaryDirectory() as tmp:
        train, test = Path(tmp) / "train.txt", Path(tmp) / "test.txt"
        fasttext_file(art / "tokens" / "train.arrow", train)
        labels = fasttext_file(art / "tokens" / f"{split}.arrow", test)
        t0 = time.perf_counter()
        model = fasttext.train_supervised(str(train), wordNgrams=2, epoch=25, lr=1.0, thread=2, verbose=0, seed=0)
        seconds = time.perf_counter() - t0
        lines = test.read_text(encoding="utf-8").splitlines()
        predicted, _ = model.predict([line.split(" ", 1)[1] if " " in line else "" for line in lines])
    right = sum(int(p[0].removeprefix("__label__")) == y for p, y in zip(predicted, labels))
    return {"accuracy": round(right / len(labels), 4), "seconds": round(seconds, 2)}


def lstm(art: Path, seed: int) -> dict:
    from pipeline.inference import score_split
    from pipeline.train import Trainer

    cfg = TrainConfig.from_block({"seed": seed})
    vectors = art / "vectors" if (art / "vectors").is_dir() else None
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        trainer = Trainer(art / "shards", art / "vocab" / "vocab.tsv", out, cfg, vectors_dir=vectors)
        trainer.fit()
        seconds = time.perf_counter() - t0
        trainer.model.load_state_dict(trainer.best_state)
        scored = score_split(trainer.model, trainer.reader, eval_split(trainer.reader), cfg.eval_batch_size,
                             trainer.device)
        trainer.close()
    return {"accuracy": round(scored["accuracy"], 4), "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", required=True, metavar="NAME=ARTIFACTS_DIR")
    ap.add_argument("--lstm", action="store_true", help="also train the LSTM (minutes on long texts)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = ap.parse_args()
    table = {}
    for spec in args.data:
        name, path = spec.split("=", 1)
        art = Path(path)
        split = eval_split(ShardReader(art / "shards"))
        row = {"split": split, "baseline": baseline(art), "fasttext": fasttext_run(art, split)}
        if args.lstm:
            runs = [lstm(art, seed) for seed in args.seeds]
            row["lstm"] = {"accuracy": statistics.median(r["accuracy"] for r in runs),
                           "seconds": statistics.median(r["seconds"] for r in runs), "runs": runs}
        table[name] = row
        print(json.dumps({name: row}), flush=True)
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
