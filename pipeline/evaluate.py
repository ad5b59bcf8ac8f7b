"""Stage ``evaluate``: metrics, plots and a report a person reads first.

Output contract::

    <out>/report.md        dataset, params, metric tables, curves, confusion
                           matrix and misclassified examples
    <out>/curves.png       training curves (loss, accuracy per epoch)
    <out>/confusion.png    confusion matrix
    <out>/per_class.csv    precision, recall, f1, support per class
    <out>/metrics.json     the same as <metrics>, kept with this dataset's report
                           (<metrics> is at a fixed path shared by every dataset)
    <metrics>              DVC metrics: accuracy, macro_f1, loss, per class
    <confusion>            DVC confusion plot data: one row per example, actual,predicted
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .fileio import atomic_dir, write_csv, write_json
from .shards import ShardReader
from .train import evaluate_split, load_checkpoint, model_from_checkpoint, pick_device

EVALUATE_DEFAULTS = {"split": "auto", "batch_size": 256, "examples": 8}


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


def plot_curves(history_csv: Path, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history_csv or not Path(history_csv).exists():
        return False
    rows = list(csv.DictReader(open(history_csv, encoding="utf-8")))
    if not rows:
        return False
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", ax1), ("acc", ax2)):
        ax.plot(epochs, [float(r[f"train_{key}"]) for r in rows], marker="o", label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(cm)
    size = 1.2 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def evaluate_stage(shards: str | Path, vocab_path: str | Path, model_dir: str | Path, raw_dir: str | Path,
                   history_csv: str | Path | None, out_dir: str | Path, metrics_path: str | Path,
                   confusion_path: str | Path, params: dict) -> dict:
    ckpt = load_checkpoint(Path(model_dir) / "model.pt", vocab_path)
    reader = ShardReader(shards, vocab_path=vocab_path)
    split = params["split"]
    if split == "auto":
        split = "test" if "test" in reader.splits else "validation"
    data = reader.split(split)
    device = pick_device(ckpt["config"].get("device", "auto"))
    model = model_from_checkpoint(ckpt, device)
    labels = list(ckpt["labels"])
    result = evaluate_split(model, data, int(params["batch_size"]), device)
    metrics = classification_metrics(data.labels, result["pred"], labels)
    metrics.update(loss=round(result["loss"], 6), split=split, rows=len(data))

    raw_path = Path(raw_dir) / f"{split}.parquet"
    texts = pq.read_table(raw_path, columns=["text"]).column("text") if raw_path.exists() else None
    wrong = np.flatnonzero(result["pred"] != data.labels)
    rng = np.random.default_rng(0)
    picked = np.sort(rng.permutation(wrong)[: int(params["examples"])]) if len(wrong) else wrong
    examples = []
    for i in picked:
        text = texts[int(data.raw_rows[i])].as_py() if texts is not None else "(raw text not available)"
        text = " ".join(text.split())
        examples.append([labels[data.labels[i]], labels[result["pred"][i]], f"{result['probs'][i].max():.2f}",
                         (text[:300] + "…" if len(text) > 300 else text).replace("|", "\\|")])

    with atomic_dir(out_dir) as tmp:
        has_curves = plot_curves(Path(history_csv) if history_csv else None, tmp / "curves.png")
        plot_confusion(metrics["confusion"], labels, tmp / "confusion.png")
        per_class_rows = [[n, c["precision"], c["recall"], c["f1"], c["support"]] for n, c in metrics["per_class"].items()]
        write_csv(tmp / "per_class.csv", ["label", "precision", "recall", "f1", "support"], per_class_rows)
        preprocess = json.loads(ckpt.get("preprocess", "{}"))
        report = [
            f"# Evaluation report: {reader.dir.parent.name}",
            "",
            f"Split **{split}**, {len(data):,} rows, {len(labels)} classes. Model from epoch {ckpt['epoch']} "
            f"(validation accuracy {ckpt['val_acc']:.4f}).",
            "",
            "## Metrics",
            "",
            _table(["accuracy", "macro-F1", "loss"], [[f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", f"{metrics['loss']:.4f}"]]),
            "",
            "## Per class",
            "",
            _table(["class", "precision", "recall", "F1", "support"],
                   [[n, f"{p:.4f}", f"{r:.4f}", f"{f:.4f}", s] for n, p, r, f, s in per_class_rows]),
            "",
            "## Confusion matrix (rows: actual, columns: predicted)",
            "",
            _table(["actual \\ predicted", *labels], [[labels[i], *row] for i, row in enumerate(metrics["confusion"])]),
            "",
            "![confusion matrix](confusion.png)",
            "",
        ]
        if has_curves:
            report += ["## Training curves", "", "![training curves](curves.png)", ""]
        report += ["## Misclassified examples", "",
                   _table(["actual", "predicted", "p", "text"], examples) if examples else "None: every example is right.", ""]
        report += ["## Params", "", "```json", json.dumps({"train": ckpt["config"], **preprocess}, indent=2, sort_keys=True), "```", ""]
        (tmp / "report.md").write_text("\n".join(report), encoding="utf-8")
        write_json(tmp / "params.json", {"evaluate": params})
        write_json(tmp / "metrics.json", metrics)
    write_json(metrics_path, metrics)
    write_csv(confusion_path, ["actual", "predicted"], ([labels[a], labels[p]] for a, p in zip(data.labels, result["pred"])))
    return metrics
