"""Stage ``evaluate``: score the trained model on the test split and write the report.

Output contract::

    <out>/report.md        dataset, params, metric tables, curves, confusion
                           matrix and misclassified examples (pipeline.report)
    <out>/curves.png       training curves (loss, accuracy per epoch)
    <out>/confusion.png    confusion matrix
    <out>/per_class.csv    precision, recall, f1, support per class
    <out>/metrics.json     the same as the DVC metrics file, kept with this
                           dataset's report (the DVC file is shared by datasets)
    <out>/params.json      the evaluate params
  plus, returned to the stage: the metrics (DVC metrics file) and the
  (actual, predicted) pairs of every row (DVC confusion plot).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq

from .checkpoint import load_checkpoint, model_from_checkpoint, pick_device
from .config import EvaluateConfig
from .fileio import ROWS_PER_BATCH, iter_parquet, read_json, write_csv, write_json, write_text
from .integrity import sealed_dir, verify_dir
from .inference import predict_split
from .report import plot_confusion, plot_curves, render_report
from .shards import ShardReader

EXAMPLE_CHARS = 300


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = actual)."""
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp = cm[i, i]
        pred_n, true_n = cm[:, i].sum(), cm[i, :].sum()
        p = tp / pred_n if pred_n else 0.0
        r = tp / true_n if true_n else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[name] = {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f1), 6),
                           "support": int(true_n)}
    return {
        "accuracy": round(float(np.trace(cm) / max(cm.sum(), 1)), 6),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 6),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def pick_examples(actual: np.ndarray, predicted: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` misclassified row indices, chosen reproducibly, in row order."""
    wrong = np.flatnonzero(predicted != actual)
    return np.sort(np.random.default_rng(seed).permutation(wrong)[:n]) if len(wrong) else wrong


def raw_rows_at(raw_path: Path, rows: np.ndarray) -> dict[int, dict]:
    """Text (and id, when the raw split has one) of the given row numbers, read batch by batch so
    memory does not grow with the split."""
    columns = [c for c in ("id", "text") if c in pq.read_schema(raw_path).names]
    wanted, found, start = np.unique(rows.astype(np.int64)), {}, 0
    for batch in iter_parquet(raw_path, ROWS_PER_BATCH, columns):
        end = start + batch.num_rows
        for r in wanted[(wanted >= start) & (wanted < end)]:
            found[int(r)] = {c: batch.column(c)[int(r) - start].as_py() for c in columns}
        start = end
    return found


def example_rows(picked: np.ndarray, raw_rows: np.ndarray, actual: np.ndarray, predicted: np.ndarray,
                 probs: np.ndarray, labels: list[str], raw_path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows): [id,] actual, predicted, p, text of each picked row, read back from the raw split."""
    found = raw_rows_at(raw_path, raw_rows[picked])
    with_id = any("id" in r for r in found.values())
    rows = []
    for i in picked:
        raw = found[int(raw_rows[i])]
        text = " ".join(raw["text"].split())
        row = [labels[actual[i]], labels[predicted[i]], f"{probs[i].max():.2f}",
               text[:EXAMPLE_CHARS] + "…" if len(text) > EXAMPLE_CHARS else text]
        rows.append([raw["id"] or "", *row] if with_id else row)
    return (["id"] if with_id else []) + ["actual", "predicted", "p", "text"], rows


def read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def evaluate_stage(shards: str | Path, vocab_path: str | Path, model_dir: str | Path, raw_dir: str | Path,
                   out_dir: str | Path, cfg: EvaluateConfig) -> tuple[dict, Iterator[tuple[str, str]]]:
    """Score the model, write the report folder; return (metrics, the confusion pairs as they are read)."""
    model_dir = Path(model_dir)
    verify_dir(raw_dir, "ingest")
    ckpt = load_checkpoint(model_dir / "model.pt", vocab_path)
    reader = ShardReader(shards, vocab_path=vocab_path)
    split = cfg.split if cfg.split != "auto" else ("test" if "test" in reader.splits else "validation")
    data = reader.split(split)
    device = pick_device(ckpt["config"].get("device", "auto"))
    labels = list(ckpt["labels"])
    result = predict_split(model_from_checkpoint(ckpt, device), data, cfg.batch_size, device)
    metrics = classification_metrics(data.labels, result["pred"], labels)
    metrics.update(loss=round(result["loss"], 6), split=split, rows=len(data))
    picked = pick_examples(data.labels, result["pred"], cfg.examples)
    example_header, examples = example_rows(picked, data.raw_rows, data.labels, result["pred"], result["probs"],
                                            labels, Path(raw_dir) / f"{split}.parquet")
    with sealed_dir(out_dir) as tmp:
        has_curves = plot_curves(read_history(model_dir / "history.csv"), tmp / "curves.png")
        plot_confusion(metrics["confusion"], labels, tmp / "confusion.png",
                       f"Confusion matrix\n{reader.dir.parent.name}, {split} split, {len(data):,} rows")
        write_csv(tmp / "per_class.csv", ["label", "precision", "recall", "f1", "support"],
                  ([n, c["precision"], c["recall"], c["f1"], c["support"]] for n, c in metrics["per_class"].items()))
        model_stats = read_json(model_dir / "stats.json")
        params = {**read_json(Path(raw_dir) / "params.json"), **ckpt["preprocess"], "train": ckpt["config"],
                  "vectors": {"file": model_stats.get("vectors"), "vocab_words_covered": model_stats.get("vectors_covered")},
                  "evaluate": cfg.to_dict()}
        write_text(tmp / "report.md", render_report(reader.dir.parent.name, split, metrics, labels, ckpt["epoch"],
                                                    ckpt["val_acc"], (example_header, examples), has_curves, params,
                                                    read_json(Path(raw_dir) / "stats.json")))
        write_json(tmp / "params.json", {"evaluate": cfg.to_dict()})
        write_json(tmp / "metrics.json", metrics)
    return metrics, confusion_pairs(data.labels, result["pred"], labels)


def confusion_pairs(actual: np.ndarray, predicted: np.ndarray, labels: list[str]) -> Iterator[tuple[str, str]]:
    """(actual, predicted) class names of every row, in row order, made ``ROWS_PER_BATCH`` rows at a time."""
    names = np.array(labels, dtype=object)
    for start in range(0, len(actual), ROWS_PER_BATCH):
        end = start + ROWS_PER_BATCH
        yield from zip(names[actual[start:end]], names[predicted[start:end]])
