"""The evaluation report a person reads first: a pure Markdown renderer and the PNG plots.

Nothing here reads artifacts or computes metrics; :mod:`pipeline.evaluate`
gathers the figures and calls these.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _figure(figsize: tuple[float, float]):
    """A Matplotlib figure outside pyplot (the pattern Matplotlib documents for servers): no
    global figure registry or GUI backend to import or close; ``savefig`` renders with Agg."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def plot_curves(history: list[dict], path: Path, partial: str | None = None) -> bool:
    """Loss and accuracy per epoch (train and validation), a tick per epoch, the last one marked when
    ``train.max_steps`` cut it (``partial``: what was left of it); False when there is no history."""
    if not history:
        return False
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) for r in history]
    best = max(history, key=lambda r: (float(r["val_acc"]), -int(r["epoch"])))  # the epoch train keeps
    fig = _figure((9, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
    for key, ax in (("loss", ax1), ("acc", ax2)):
        ax.plot(epochs, [float(r[f"train_{key}"]) for r in history], marker="o", label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in history], marker="o", label="validation")
        ax.axvline(int(best["epoch"]), color="grey", linestyle="--", linewidth=1, label=f"best (epoch {best['epoch']})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) <= 20:
            ax.set_xticks(epochs, [f"{e}*" if partial and e == epochs[-1] else str(e) for e in epochs])
        ax.set_xlabel(f"epoch (* partial: {partial})" if partial else "epoch")
        ax.set_ylabel("cross-entropy loss" if key == "loss" else "accuracy")
        ax.set_title("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str = "Confusion matrix") -> None:
    m = np.asarray(cm)
    size = 1.2 + 0.9 * len(labels)
    fig = _figure((size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; ``|`` in cells is escaped."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


SAME_SPLIT_NOTE = ("**Note:** this is the validation split, which also chose the model (its best epoch), so the score "
                   "is optimistic for new text. For a held-out score, give a test file or set `dataset.test_fraction` "
                   "(e.g. 0.1).")


def render_report(dataset: str, split: str, metrics: dict, labels: list[str], model_epoch: int, model_val_acc: float,
                  examples: tuple[list[str], list[list[str]]], has_curves: bool, params: dict,
                  data: dict | None = None) -> str:
    """report.md from figures already computed (pure: same inputs, same text). ``data``: ingest's stats."""
    per_class = [[n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", c["support"]]
                 for n, c in metrics["per_class"].items()]
    lines = [
        f"# Evaluation report: {dataset}",
        "",
        f"Split **{split}**, {metrics['rows']:,} rows, {len(labels)} classes. Model from epoch {model_epoch} "
        f"(validation accuracy {model_val_acc:.4f}).",
        "",
        *([SAME_SPLIT_NOTE, ""] if split == "validation" else []),
        "## Metrics",
        "",
        table(["accuracy", "macro-F1", "loss"],
              [[f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", f"{metrics['loss']:.4f}"]]),
        "",
        *baseline_section(metrics, str(params.get("train", {}).get("rnn_type", "lstm")).upper()),
        "## Per class",
        "",
        table(["class", "precision", "recall", "F1", "support"], per_class),
        "",
        "## Confusion matrix (rows: actual, columns: predicted)",
        "",
        table(["actual \\ predicted", *labels], [[labels[i], *row] for i, row in enumerate(metrics["confusion"])]),
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    if data:
        lines += data_section(data)
    if has_curves:
        lines += ["## Training curves", "", "![training curves](curves.png)", ""]
    lines += ["## Misclassified examples", "",
              table(*examples) if examples[1] else "None: every example is right.", ""]
    lines += ["## Params", "", "```json", json.dumps(params, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


AS_GOOD = 0.005  # a margin under half a point of accuracy either way: the baseline is as good


def baseline_section(metrics: dict, model: str = "LSTM") -> list[str]:
    """The model (``model`` names its kind) beside the linear baseline (pipeline.baseline), and plainly
    which one to ship."""
    base = metrics.get("baseline")
    if not base:
        return []
    margin = metrics["margin"]
    points = lambda x: f"{100 * x:+.1f} points"  # noqa: E731
    rows = [[f"{model} (this model)", f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", ""],
            ["baseline: linear, bag of unigrams + hashed bigrams", f"{base['accuracy']:.4f}", f"{base['macro_f1']:.4f}",
             f"{base['seconds']:.1f} s"],
            [f"margin ({model} − baseline)", points(margin["accuracy"]), points(margin["macro_f1"]), ""]]
    if margin["accuracy"] >= AS_GOOD:
        verdict = f"The {model} is **{100 * margin['accuracy']:.1f} points** of accuracy above the baseline."
    elif margin["accuracy"] > -AS_GOOD:
        verdict = (f"**The baseline is as good as the {model} here** (within half a point of accuracy). It trains in "
                   f"{base['seconds']:.1f} s: it is the faster model, and the one to prefer unless word order matters.")
    else:
        verdict = (f"**The baseline is better than the {model} here**, by {-100 * margin['accuracy']:.1f} points of "
                   f"accuracy, and trains in {base['seconds']:.1f} s: prefer it, or tune the {model}.")
    return ["## Against a baseline", "", table(["model", "accuracy", "macro-F1", "train time"], rows), "", verdict,
            "", "Both are scored on the same split, from the same tokens.", ""]


def data_section(data: dict) -> list[str]:
    """Rows per split, rows dropped and why, exact duplicates and overlap with train (from ingest)."""
    splits = list(data.get("rows", {}))
    dupes, dropped, overlap = data.get("duplicates", {}), data.get("dropped", {}), data.get("overlap", {})
    rows = [[s, f"{data['rows'][s]:,}", sum((dropped.get(s) or {}).values()), dupes.get(s, {}).get("repeated_rows", 0),
             dupes.get(s, {}).get("texts_with_conflicting_labels", 0), overlap.get(f"{s}_in_train", "")]
            for s in splits]
    lines = ["## Data", "", table(["split", "rows", "dropped", "repeated rows", "texts with conflicting labels",
                                   "rows also in train"], rows), ""]
    leaked = {k: v for k, v in overlap.items() if v}
    if leaked:
        counts = ", ".join(f"{v:,} {k.removesuffix('_in_train')} rows" for k, v in leaked.items())
        lines += [f"**Warning:** {counts} have a text that is also in train, so scores on them overstate "
                  "accuracy on new text.", ""]
    return lines
