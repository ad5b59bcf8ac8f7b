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
    <out>/baseline.pt      the baseline fitted on the train split (pipeline.baseline),
                           unless evaluate.baseline is false; metrics.json then
                           holds its figures under "baseline" and the LSTM's lead
                           over it under "margin"
  plus the (actual, predicted) class names of every row, in the order they were
  scored, at the path the stage gives (the DVC confusion plot); the metrics are
  returned to the stage (the DVC metrics file).

The split is scored a batch at a time (:func:`pipeline.inference.scored_batches`):
the confusion matrix, the loss and the misclassified examples are gathered as the
batches pass, so memory does not grow with the split.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .baseline import baseline_record, fit_baseline, predicted_batches
from .checkpoint import load_checkpoint, model_from_checkpoint, pick_device, save_checkpoint
from .core.config import EvaluateConfig
from .core.fileio import ROWS_PER_BATCH, csv_writer, iter_parquet, read_json, write_csv, write_json, write_text
from .core.integrity import sealed_dir, verify_dir
from .cpu_share import ThreadGovernor
from .inference import scored_batches
from .report import plot_confusion, plot_curves, render_report
from .shards import ShardReader

EXAMPLE_CHARS = 300


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """The confusion matrix [classes, classes] of some rows (rows = actual)."""
    return np.bincount(actual * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def classification_metrics(cm: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = actual)."""
    cm = np.asarray(cm, dtype=np.int64)
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


class ExampleDraw:
    """Up to ``n`` misclassified rows drawn uniformly from a stream of batches, reproducibly.

    Every row gets a random key from one generator in stream order; the ``n`` wrong rows with the
    smallest keys are kept, which is a uniform sample of the wrong rows whatever their number.
    Memory holds ``n`` rows and one batch."""

    def __init__(self, n: int, seed: int = 0):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0)
        self.rows = np.zeros((0, 3), dtype=np.int64)  # raw row, actual, predicted
        self.p = np.zeros(0, dtype=np.float32)

    def add(self, raw_rows: np.ndarray, actual: np.ndarray, predicted: np.ndarray, p: np.ndarray) -> None:
        keys = self.rng.random(len(raw_rows))
        wrong = predicted != actual
        self.keys = np.concatenate([self.keys, keys[wrong]])
        self.rows = np.concatenate([self.rows, np.stack([raw_rows, actual, predicted], axis=1)[wrong]])
        self.p = np.concatenate([self.p, p[wrong]])
        if len(self.keys) > self.n:
            keep = np.argsort(self.keys, kind="stable")[:self.n]
            self.keys, self.rows, self.p = self.keys[keep], self.rows[keep], self.p[keep]

    def picked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(raw rows, actual, predicted, p) of the kept rows, in raw row order."""
        order = np.argsort(self.rows[:, 0], kind="stable")
        rows = self.rows[order]
        return rows[:, 0], rows[:, 1], rows[:, 2], self.p[order]


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


def example_rows(raw_rows: np.ndarray, actual: np.ndarray, predicted: np.ndarray, p: np.ndarray,
                 labels: list[str], raw_path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows): [id,] actual, predicted, p, text of each given row, read back from the raw split."""
    found = raw_rows_at(raw_path, raw_rows)
    with_id = any("id" in r for r in found.values())
    rows = []
    for r, a, y, q in zip(raw_rows.tolist(), actual.tolist(), predicted.tolist(), p.tolist()):
        raw = found[r]
        text = " ".join(raw["text"].split())
        row = [labels[a], labels[y], f"{q:.2f}", text[:EXAMPLE_CHARS] + "…" if len(text) > EXAMPLE_CHARS else text]
        rows.append([raw["id"] or "", *row] if with_id else row)
    return (["id"] if with_id else []) + ["actual", "predicted", "p", "text"], rows


def read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def evaluate_stage(shards: str | Path, vocab_path: str | Path, model_dir: str | Path, raw_dir: str | Path,
                   out_dir: str | Path, cfg: EvaluateConfig, pairs_path: str | Path) -> dict:
    """Score the model on the split a batch at a time; write the report folder and, at ``pairs_path``,
    the (actual, predicted) class names of every row in the order they were scored (length order).
    Returns the metrics."""
    model_dir = Path(model_dir)
    verify_dir(raw_dir, "ingest")
    ckpt = load_checkpoint(model_dir / "model.pt", vocab_path)
    reader = ShardReader(shards, vocab_path=vocab_path)
    split = cfg.split if cfg.split != "auto" else ("test" if "test" in reader.splits else "validation")
    device = pick_device(ckpt["config"].get("device", "auto"))
    labels = list(ckpt["labels"])
    names = np.array(labels, dtype=object)
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    loss_sum, draw = 0.0, ExampleDraw(cfg.examples)
    model = model_from_checkpoint(ckpt, device)
    governor = ThreadGovernor.start()
    with csv_writer(pairs_path, ["actual", "predicted"]) as pairs:
        for scored in scored_batches(model, reader, split, cfg.batch_size, device, governor):
            actual, predicted = scored.batch.labels, scored.predicted
            cm += confusion_counts(actual, predicted, len(labels))
            loss_sum += scored.loss_sum
            draw.add(scored.batch.raw_rows, actual, predicted, scored.probs.max(axis=1))
            pairs.writerows(zip(names[actual], names[predicted]))
    rows = int(cm.sum())
    metrics = classification_metrics(cm, labels)
    metrics.update(loss=round(loss_sum / max(rows, 1), 6), split=split, rows=rows)
    baseline = fit_and_score_baseline(reader, split, labels, cfg.batch_size, governor) if cfg.baseline else None
    if baseline:
        metrics["baseline"] = baseline[1]
        metrics["margin"] = {k: round(metrics[k] - baseline[1][k], 6) for k in ("accuracy", "macro_f1")}
    example_header, examples = example_rows(*draw.picked(), labels, Path(raw_dir) / f"{split}.parquet")
    with sealed_dir(out_dir) as tmp:
        model_stats = read_json(model_dir / "stats.json")
        has_curves = plot_curves(read_history(model_dir / "history.csv"), tmp / "curves.png",
                                 model_stats.get("partial_epoch"))
        plot_confusion(metrics["confusion"], labels, tmp / "confusion.png",
                       f"Confusion matrix\n{reader.dir.parent.name}, {split} split, {rows:,} rows")
        write_csv(tmp / "per_class.csv", ["label", "precision", "recall", "f1", "support"],
                  ([n, c["precision"], c["recall"], c["f1"], c["support"]] for n, c in metrics["per_class"].items()))
        params = {**read_json(Path(raw_dir) / "params.json"), **ckpt["preprocess"], "train": ckpt["config"],
                  "vectors": {"settings": model_stats.get("vectors_settings"), "file": model_stats.get("vectors"),
                              "vocab_words_covered": model_stats.get("vectors_covered")},
                  "evaluate": cfg.to_dict()}
        write_text(tmp / "report.md", render_report(reader.dir.parent.name, split, metrics, labels, ckpt["epoch"],
                                                    ckpt["val_acc"], (example_header, examples), has_curves, params,
                                                    read_json(Path(raw_dir) / "stats.json")))
        write_json(tmp / "params.json", {"evaluate": cfg.to_dict()})
        write_json(tmp / "metrics.json", metrics)
        if baseline:
            save_checkpoint(baseline_record(baseline[0], labels), tmp / "baseline.pt")
    return metrics


def fit_and_score_baseline(reader: ShardReader, split: str, labels: list[str], batch_size: int,
                           governor: ThreadGovernor) -> tuple:
    """(model, metrics) of the baseline fitted on the train split and scored on ``split``."""
    model, info = fit_baseline(reader.split("train"), int(reader.manifest["vocab"]["size"]), len(labels),
                               governor=governor)
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for actual, predicted in predicted_batches(model, reader, split, batch_size):
        cm += confusion_counts(actual, predicted, len(labels))
    return model, {**classification_metrics(cm, labels), **info}
