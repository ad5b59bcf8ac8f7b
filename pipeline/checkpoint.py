"""Model checkpoints: the device and kernel choice, building a model, saving and loading safely.

``model.pt`` is a plain dict of tensors and plain values, written with
``torch.save`` and read with ``torch.load(weights_only=True)`` (no pickled
code can run)::

    format        "textpipe-model/1"
    state_dict    the model's weights (best epoch)
    config        the train params (dict)
    labels        class names, id order
    vocab_sha256  sha256 of the vocab.tsv it was trained with; vocab_size
    preprocess    dict of the tokenize, vocab, bucket and shard params, so new
                  text can be tokenized and truncated exactly as in training
    epoch, val_acc  the best epoch and its validation accuracy

Train, evaluate and predict all go through this module, so none of them
imports another's code.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from .core.errors import PipelineError
from .core.fileio import atomic_path, sha256_file
from .core.integrity import verify_dir
from .model import TextClassifier

FORMAT = "textpipe-model/1"
MODEL_KEYS = ("embed_dim", "hidden_size", "num_layers", "bidirectional", "dropout", "rnn_type", "pooling")


def pick_device(name: str = "auto", key: str = "train.device") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU. An explicit device must be available here (``key``
    names the setting in the error)."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise PipelineError(f"{key} is {name!r} but this machine has no {name.upper()} device that torch can use; "
                            f"set {key} to auto or cpu")
    return torch.device(name)


def pick_impl(impl: str, device: torch.device) -> str:
    """``auto``: packing on CUDA (cuDNN handles it well), the fused exact fast path elsewhere."""
    if impl == "auto":
        return "packed" if device.type == "cuda" else "fused"
    return impl


def build_model(config: dict, vocab_size: int, num_classes: int, device: torch.device) -> TextClassifier:
    model = TextClassifier(vocab_size, num_classes, **{k: config[k] for k in MODEL_KEYS},
                           rnn_impl=pick_impl(config["rnn_impl"], device))
    return model.to(device)


def make_checkpoint(state_dict: dict, config: dict, labels: list[str], vocab_path: str | Path, vocab_size: int,
                    preprocess: dict, epoch: int, val_acc: float) -> dict[str, Any]:
    return {"format": FORMAT, "state_dict": state_dict, "config": config, "labels": list(labels),
            "vocab_sha256": sha256_file(vocab_path), "vocab_size": int(vocab_size), "preprocess": preprocess,
            "epoch": int(epoch), "val_acc": float(val_acc)}


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Atomic ``torch.save``. Saved through a buffer: torch names the archive's root folder after
    the file it writes, and the temporary file's random name would make equal checkpoints differ."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: str | Path, vocab_path: str | Path | None = None) -> dict:
    """Load ``model.pt`` safely (weights only) and check it matches the vocabulary."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"model {path} not found; run `textpipe train` (or `dvc repro train`) first")
    verify_dir(path.parent, "train")
    ckpt = read_checkpoint_file(path)
    if vocab_path is not None and sha256_file(vocab_path) != ckpt.get("vocab_sha256"):
        raise PipelineError(
            f"model {path} was trained with another vocabulary than {vocab_path} (another dataset or vocab params); "
            "rerun `dvc repro` for this dataset"
        )
    return ckpt


def read_checkpoint_file(path: str | Path, fmt: str = FORMAT) -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint file: a damaged file or one carrying pickled
    code is refused in one line (the code never runs)."""
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols: the one line below says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PipelineError(f"{path} is not a textpipe checkpoint ({type(exc).__name__}); "
                            "retrain with `dvc repro -f train`") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise PipelineError(f"{path} is not a {fmt} file (it says {ckpt.get('format') if isinstance(ckpt, dict) else None!r}); "
                            "retrain with `dvc repro -f train`" + (" and export again" if fmt != FORMAT else ""))
    return ckpt


DIGEST_KEY = "sha256"


def state_digest(obj: Any) -> str:
    """sha256 of a checkpoint-like value (dicts, lists, tensors, plain values) by content, so a file that
    carries it can be checked after ``torch.load``: a flipped byte inside a tensor changes it."""
    import hashlib

    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, dict):
            h.update(b"{")
            for k in sorted(x, key=repr):
                feed(k)
                feed(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    feed(obj)
    return h.hexdigest()


def with_digest(record: dict) -> dict:
    """``record`` plus the digest of the rest of it (:data:`DIGEST_KEY`)."""
    return {**record, DIGEST_KEY: state_digest({k: v for k, v in record.items() if k != DIGEST_KEY})}


def digest_matches(record: dict) -> bool:
    """Whether a record written by :func:`with_digest` is unchanged (one without a digest: an older file, True)."""
    return DIGEST_KEY not in record or record[DIGEST_KEY] == state_digest(
        {k: v for k, v in record.items() if k != DIGEST_KEY})


def model_from_checkpoint(ckpt: dict, device: torch.device | None = None) -> TextClassifier:
    device = device or pick_device("auto")
    model = build_model(ckpt["config"], int(ckpt["vocab_size"]), len(ckpt["labels"]), device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
