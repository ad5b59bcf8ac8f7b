"""Stage ``train``: fit the classifier on the shards.

Output contract (``<out>/``)::

    model.pt     the best checkpoint (by validation accuracy), a plain dict
                 loadable with ``torch.load(weights_only=True)``:
                 state_dict, config (model + train params), labels,
                 vocab_sha256, vocab_size, manifest params, epoch, metrics
    stats.json   epochs run, best epoch, seconds, real tokens/s, the vectors
                 file used and how many vocabulary words it covered
    params.json  the train params
  plus, at paths given by the caller:
    history CSV  one row per epoch (DVC plots): epoch, train_loss, train_acc,
                 val_loss, val_acc, padding_waste, tokens_per_s
    metrics JSON the best epoch's validation metrics (DVC metrics)

A resume checkpoint (``last.pt`` under ``resume_dir``) is written after every
epoch and removed when training ends; a rerun with the same config continues
from it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import PipelineError
from .fileio import atomic_dir, atomic_path, sha256_file, write_csv, write_json
from .model import TextClassifier
from .sampler import LengthBucketSampler, by_length_desc, collate
from .shards import ShardReader, SplitData
from .vectors import trained_vectors
from .vocab import Vocabulary

TRAIN_DEFAULTS: dict[str, Any] = {
    "seed": 1,
    "epochs": 5,
    "max_steps": 0,
    "batch_size": 32,
    "max_tokens": 0,
    "padding_noise": 0.1,
    "optimizer": "adam",
    "lr": 0.002,
    "weight_decay": 0.0,
    "clip_grad": 5.0,
    "patience": 2,
    "embed_dim": 128,
    "hidden_size": 128,
    "num_layers": 1,
    "bidirectional": True,
    "dropout": 0.3,
    "rnn_type": "lstm",
    "pooling": "last",
    "rnn_impl": "auto",
    "vectors": None,
    "device": "auto",
    "threads": 0,
    "eval_batch_size": 256,
}
MODEL_KEYS = ("embed_dim", "hidden_size", "num_layers", "bidirectional", "dropout", "rnn_type", "pooling")
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "padding_waste", "tokens_per_s")


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_impl(impl: str, device: torch.device) -> str:
    """``auto``: packing on CUDA (cuDNN handles it well), the fused exact fast path elsewhere."""
    if impl == "auto":
        return "packed" if device.type == "cuda" else "fused"
    if impl not in ("packed", "fused"):
        raise PipelineError(f"train.rnn_impl must be auto, packed or fused, got {impl!r}")
    return impl


def build_model(config: dict, vocab_size: int, num_classes: int, device: torch.device) -> TextClassifier:
    try:
        model = TextClassifier(vocab_size, num_classes, **{k: config[k] for k in MODEL_KEYS},
                               rnn_impl=pick_impl(config["rnn_impl"], device))
    except ValueError as exc:
        raise PipelineError(f"bad model params in the train block: {exc}") from None
    return model.to(device)


def pick_vectors(param: str | None, vectors_dir: str | Path | None, vocab_path: str | Path) -> Path | None:
    """The vectors file to start the embedding from: ``train.vectors`` or the vectors stage's output, never both."""
    trained = trained_vectors(vectors_dir, vocab_path)
    if param and trained:
        raise PipelineError(f"train.vectors is set and the vectors stage trained {trained}; keep one: "
                            "set train.vectors: null or vectors.method: none")
    return Path(param) if param else trained


def load_vectors(path: str | Path, vocab: Vocabulary, dim: int) -> tuple[torch.Tensor, int]:
    """Rows of a GloVe / word2vec text file for the vocabulary; returns (matrix, words covered)."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"train.vectors file {path} not found; give a GloVe/word2vec text file or null")
    weights = torch.empty(len(vocab), dim).normal_(0, 0.1)
    weights[0] = 0
    covered = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: "<count> <dim>"
            if len(parts) != dim + 1:
                raise PipelineError(f"{path}:{lineno} has {len(parts) - 1} values but train.embed_dim is {dim}; "
                                    "make them match (vectors.dim for trained vectors)")
            idx = vocab.stoi.get(parts[0])
            if idx is not None and idx > 1:
                weights[idx] = torch.tensor([float(v) for v in parts[1:]])
                covered += 1
    return weights, covered


def make_optimizer(opt_cls: type, model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam/AdamW with the fused single-kernel update where this torch build has it (about 20% faster
    per step on CPU with a 40k-word embedding than the default multi-tensor update)."""
    try:
        return opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)


def config_hash(config: dict, manifest: dict) -> str:
    blob = json.dumps({"config": config, "vocab": manifest["vocab"], "splits": manifest["splits"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@torch.no_grad()
def evaluate_split(model: nn.Module, data: SplitData, batch_size: int, device: torch.device) -> dict:
    """Loss, accuracy, predictions and probabilities over a whole split, in row order."""
    model.eval()
    sampler = LengthBucketSampler(data.lengths, None, batch_size, shuffle=False)
    probs = np.zeros((len(data), model.head.out_features), dtype=np.float32)
    loss_sum = 0.0
    for batch in sampler:
        order = by_length_desc(data, batch)
        ids, lengths, labels = collate(data, batch)
        logits = model(ids.to(device), lengths)
        loss_sum += nn.functional.cross_entropy(logits, labels.to(device), reduction="sum").item()
        probs[order] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    preds = probs.argmax(axis=1)
    return {
        "loss": loss_sum / max(len(data), 1),
        "accuracy": float((preds == data.labels).mean()) if len(data) else 0.0,
        "pred": preds,
        "probs": probs,
    }


class Trainer:
    """Runs epochs, keeps the best checkpoint, writes history, resumes after an interruption."""

    def __init__(self, shards: str | Path, vocab_path: str | Path, out_dir: str | Path, config: dict,
                 resume_dir: str | Path | None = None, vectors_dir: str | Path | None = None):
        self.config = {**TRAIN_DEFAULTS, **config}
        self.out_dir, self.vocab_path = Path(out_dir), Path(vocab_path)
        self.resume_path = Path(resume_dir) / "last.pt" if resume_dir else None
        self.reader = ShardReader(shards, vocab_path=vocab_path)
        self.vocab = Vocabulary.load(vocab_path)
        self.labels = self.reader.labels
        if "validation" not in self.reader.splits:
            raise PipelineError("the shards have no validation split; set dataset.validation_fraction > 0 and rerun")
        self.train_data = self.reader.split("train")
        self.val_data = self.reader.split("validation")
        self.device = pick_device(self.config["device"])
        threads = int(self.config["threads"]) or os.cpu_count() or 1
        torch.set_num_threads(threads)
        torch.manual_seed(int(self.config["seed"]))
        self.model = build_model(self.config, len(self.vocab), len(self.labels), self.device)
        self.vectors = pick_vectors(self.config["vectors"], vectors_dir, vocab_path)
        self.vectors_covered = None
        if self.vectors:
            weights, self.vectors_covered = load_vectors(self.vectors, self.vocab, int(self.config["embed_dim"]))
            self.model.embedding.weight.data.copy_(weights)
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(self.config["optimizer"])
        if opt_cls is None:
            raise PipelineError(f"train.optimizer must be adam or adamw, got {self.config['optimizer']!r}")
        self.optimizer = make_optimizer(opt_cls, self.model, float(self.config["lr"]), float(self.config["weight_decay"]))
        self.sampler = LengthBucketSampler(self.train_data.lengths, self.train_data.buckets, int(self.config["batch_size"]),
                                           int(self.config["max_tokens"]), float(self.config["padding_noise"]),
                                           shuffle=True, seed=int(self.config["seed"]))
        vectors_sha = sha256_file(self.vectors) if self.vectors else None
        self.hash = config_hash({**self.config, "vectors_sha256": vectors_sha}, self.reader.manifest)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.step = 0
        self.start_epoch = 1

    # ------------------------------------------------------------------ resume
    def _state(self, epoch: int) -> dict:
        return {
            "hash": self.hash, "epoch": epoch, "step": self.step, "history": json.dumps(self.history),
            "best": json.dumps(self.best), "best_state": self.best_state, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
        }

    def try_resume(self) -> bool:
        if not self.resume_path or not self.resume_path.exists():
            return False
        state = torch.load(self.resume_path, map_location=self.device, weights_only=True)
        if state.get("hash") != self.hash:
            return False  # a checkpoint of other params or data: start over
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.best = json.loads(state["history"]), json.loads(state["best"])
        self.best_state, self.step = state["best_state"], int(state["step"])
        self.start_epoch = int(state["epoch"]) + 1
        return True

    def _save_resume(self, epoch: int) -> None:
        if self.resume_path:
            self.resume_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.resume_path) as tmp:
                torch.save(self._state(epoch), tmp)

    # ------------------------------------------------------------------ loop
    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        self.sampler.set_epoch(epoch)
        batches = self.sampler.batches()
        loss_sum, correct, seen, real, padded = 0.0, 0, 0, 0, 0
        clip = float(self.config["clip_grad"])
        max_steps = int(self.config["max_steps"])
        start = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=None, leave=False)
        for batch in bar:
            if max_steps and self.step >= max_steps:
                break
            ids, lengths, labels = collate(self.train_data, batch)
            ids, labels = ids.to(self.device), labels.to(self.device)
            logits = self.model(ids, lengths)
            loss = nn.functional.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            self.step += 1
            n = len(batch)
            loss_sum += loss.item() * n
            correct += int((logits.argmax(1) == labels).sum())
            seen += n
            real += int(lengths.sum())
            padded += ids.numel()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - start
        return {
            "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
            "padding_waste": (padded - real) / max(padded, 1), "tokens_per_s": real / max(seconds, 1e-9),
            "tokens": real, "seconds": seconds, "rows": seen,
        }

    def fit(self, history_path: str | Path | None = None, metrics_path: str | Path | None = None) -> dict:
        resumed = self.try_resume()
        patience, epochs = int(self.config["patience"]), int(self.config["epochs"])
        max_steps = int(self.config["max_steps"])
        t0 = time.perf_counter()
        for epoch in range(self.start_epoch, epochs + 1):
            stats = self.train_epoch(epoch)
            val = evaluate_split(self.model, self.val_data, int(self.config["eval_batch_size"]), self.device)
            row = {"epoch": epoch, **{k: stats[k] for k in HISTORY_FIELDS[1:3]}, "val_loss": val["loss"],
                   "val_acc": val["accuracy"], "padding_waste": stats["padding_waste"], "tokens_per_s": stats["tokens_per_s"]}
            self.history.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
            tqdm.write(f"epoch {epoch}: train loss {stats['train_loss']:.4f} acc {stats['train_acc']:.4f} | "
                       f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f} | padding {stats['padding_waste']:.1%} | "
                       f"{stats['tokens_per_s']:,.0f} tok/s")
            if self.best is None or val["accuracy"] > self.best["val_acc"]:
                self.best = {"epoch": epoch, "val_acc": val["accuracy"], "val_loss": val["loss"]}
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self._save_resume(epoch)
            if epoch - self.best["epoch"] >= patience > 0:
                tqdm.write(f"early stop: no validation gain for {patience} epoch(s)")
                break
            if max_steps and self.step >= max_steps:
                break
        return self._finish(time.perf_counter() - t0, resumed, history_path, metrics_path)

    def _finish(self, seconds: float, resumed: bool, history_path, metrics_path) -> dict:
        if self.best is None:
            raise PipelineError("training ran no epoch (train.epochs is 0?); set train.epochs >= 1")
        checkpoint = {
            "state_dict": self.best_state, "config": self.config, "labels": self.labels,
            "vocab_sha256": sha256_file(self.vocab_path), "vocab_size": len(self.vocab),
            "preprocess": json.dumps(self.reader.manifest["params"]), "epoch": self.best["epoch"],
            "val_acc": self.best["val_acc"],
        }
        stats = {
            "epochs": len(self.history), "best_epoch": self.best["epoch"], "steps": self.step, "resumed": resumed,
            "seconds": round(seconds, 2), "tokens_per_s": round(float(np.mean([r["tokens_per_s"] for r in self.history])), 1),
            "device": str(self.device), "rnn_impl": self.model.rnn_impl, "threads": torch.get_num_threads(),
            "vectors": str(self.vectors) if self.vectors else None, "vectors_covered": self.vectors_covered,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        metrics = {"val_acc": self.best["val_acc"], "val_loss": round(self.best["val_loss"], 6),
                   "best_epoch": self.best["epoch"], "tokens_per_s": stats["tokens_per_s"]}
        with atomic_dir(self.out_dir) as tmp:
            torch.save(checkpoint, tmp / "model.pt")
            write_json(tmp / "params.json", {"train": self.config})
            write_json(tmp / "stats.json", stats)
        if history_path:
            write_csv(history_path, list(HISTORY_FIELDS), ([row[k] for k in HISTORY_FIELDS] for row in self.history))
        if metrics_path:
            write_json(metrics_path, metrics)
        if self.resume_path and self.resume_path.exists():
            self.resume_path.unlink()
        return {**stats, **metrics}


def load_checkpoint(path: str | Path, vocab_path: str | Path | None = None) -> dict:
    """Load ``model.pt`` safely (weights only) and check it matches the vocabulary."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"model {path} not found; run `textpipe train` (or `dvc repro train`) first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PipelineError(f"{path} is not a textpipe checkpoint ({type(exc).__name__}); retrain with `textpipe train`") from None
    if vocab_path is not None:
        actual = sha256_file(vocab_path)
        if actual != ckpt.get("vocab_sha256"):
            raise PipelineError(
                f"model {path} was trained with another vocabulary than {vocab_path} (another dataset or vocab params); "
                "rerun `dvc repro` for this dataset"
            )
    return ckpt


def model_from_checkpoint(ckpt: dict, device: torch.device | None = None) -> TextClassifier:
    device = device or pick_device("auto")
    model = build_model(ckpt["config"], int(ckpt["vocab_size"]), len(ckpt["labels"]), device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


