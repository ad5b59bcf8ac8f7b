"""Classify new text with a trained model, tokenized exactly as in training; export a shippable model.

An exported model is one file that needs nothing else (no project, no
``params.yaml``, no vocabulary file), written with ``torch.save`` and read with
``torch.load(weights_only=True)``::

    format        "textpipe-export/1"
    state_dict    the model's weights
    config        the train params (architecture)
    labels        class names, id order
    vocab         the vocabulary's tokens in id order (``<pad>``, ``<unk>`` first)
    vocab_sha256  sha256 of the vocab.tsv it was trained with
    preprocess    the tokenize, vocab, bucket and shard params (tokenizer settings,
                  truncation), as in ``model.pt``
    dataset       the dataset block it was trained on (name, source, labels, ...)
    epoch, val_acc  the best epoch and its validation accuracy
    sha256        digest of all the above by content (pipeline.checkpoint.state_digest),
                  checked when the file is loaded: a damaged file is refused

Python API::

    from pipeline.predict import Predictor
    predictor = Predictor.load("model.textpipe")     # or Predictor(model_pt, vocab_tsv)
    predictor.predict(["what a wonderful film"])      # [{"text", "label", "probs", "unk"}]
    for result in predictor.predict_stream(open("reviews.txt")):   # any number of texts, in order
        ...
"""
from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .buckets import truncate_docs
from .checkpoint import (digest_matches, load_checkpoint, model_from_checkpoint, pick_device, read_checkpoint_file,
                         with_digest)
from .core.config import BucketConfig, TokenizeConfig
from .core.errors import PipelineError
from .core.fileio import atomic_path, read_json
from .core.schema import UNK_ID
from .cpu_share import ThreadGovernor
from .tokenize import ParallelTokenizer
from .vocab import Vocabulary

EXPORT_FORMAT = "textpipe-export/1"
BATCH_SIZE = 256  # texts per forward pass
BLOCK = 8192  # texts predict_stream reads, tokenizes and classifies at a time


def export_model(model_path: str | Path, vocab_path: str | Path, raw_dir: str | Path, out: str | Path) -> dict:
    """Write one self-contained file from the project's ``model.pt``, vocabulary and dataset params."""
    ckpt = load_checkpoint(model_path, vocab_path)
    vocab = Vocabulary.load(vocab_path)
    dataset = read_json(Path(raw_dir) / "params.json")["dataset"]
    bundle = with_digest({**{k: v for k, v in ckpt.items() if k != "format"}, "format": EXPORT_FORMAT,
                          "vocab": list(vocab.itos), "dataset": dataset})
    buffer = io.BytesIO()
    torch.save(bundle, buffer)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return {"file": str(out), "bytes": len(buffer.getvalue()), "labels": ckpt["labels"], "vocab_size": len(vocab),
            "dataset": dataset["name"], "epoch": ckpt["epoch"], "val_acc": ckpt["val_acc"]}


class Predictor:
    """A model, its vocabulary and its tokenizer settings; ``predict(texts)`` returns labels and probabilities."""

    def __init__(self, model_path: str | Path, vocab_path: str | Path, device: str = "cpu"):
        self._setup(load_checkpoint(model_path, vocab_path), Vocabulary.load(vocab_path), device)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        """A predictor from one exported file (``textpipe export``)."""
        path = Path(path)
        if not path.is_file():
            raise PipelineError(f"model file {path} not found; write one with `textpipe export --out {path}`")
        bundle = read_checkpoint_file(path, EXPORT_FORMAT)
        if not digest_matches(bundle):
            raise PipelineError(f"{path} does not match its checksum (corrupt or edited); export it again with "
                                "`textpipe export`")
        self = cls.__new__(cls)
        vocab = bundle["vocab"]
        self._setup(bundle, Vocabulary(vocab, [0] * len(vocab)), device)
        return self

    def _setup(self, ckpt: dict, vocab: Vocabulary, device: str) -> None:
        if len(vocab) != int(ckpt["vocab_size"]):
            raise PipelineError(f"the vocabulary has {len(vocab)} words but the model expects {ckpt['vocab_size']}; "
                                "export the model again")
        self.ckpt, self.vocab, self.labels = ckpt, vocab, list(ckpt["labels"])
        pre = ckpt["preprocess"]
        self.bucket = BucketConfig.recorded(pre.get("bucket"))
        self.tokenizer = ParallelTokenizer.from_config(TokenizeConfig.from_block(pre.get("tokenize")), workers=1)
        self.device = pick_device(device, "predict --device")
        self.model = model_from_checkpoint(ckpt, self.device)
        self.governor = ThreadGovernor.start()  # follows the machine's free cores between batches

    def predict(self, texts: list[str], batch_size: int = BATCH_SIZE) -> list[dict]:
        """One result per text, in order: ``label`` and ``probs`` (or ``error`` for an empty text or one
        whose every word is unknown). Texts go through the model ``batch_size`` at a time, longest first."""
        if not texts:
            raise PipelineError("no text to classify; pass text as arguments, --file FILE, or on stdin")
        with self.tokenizer as tok:
            return self._classify(tok, texts, batch_size, "predict")

    def predict_stream(self, texts: Iterable[str], block: int = BLOCK, batch_size: int = BATCH_SIZE) -> Iterator[dict]:
        """:meth:`predict`'s results for any number of texts, in order, ``block`` texts at a time: memory
        does not grow with the input, and the first results come before the input ends."""
        texts = iter(texts)
        with self.tokenizer as tok, tqdm(desc="predict", unit="text", disable=None) as bar:
            while chunk := list(itertools.islice(texts, block)):
                yield from self._classify(tok, chunk, batch_size, None)
                bar.update(len(chunk))

    @torch.no_grad()
    def _classify(self, tok: ParallelTokenizer, texts: Sequence[str], batch_size: int, desc: str | None) -> list[dict]:
        """:meth:`predict` on ``texts`` with the tokenizer ``tok`` (entered), its bar named ``desc``."""
        tokens = tok.tokenize(texts, desc=desc).to_pylist()
        encoded = truncate_docs([self.vocab.encode(t) for t in tokens], self.bucket.max_len, self.bucket.keep_head)
        unknown = [sum(x == UNK_ID for x in ids) for ids in encoded]
        results: list[dict] = [{} for _ in texts]
        usable = [i for i, ids in enumerate(encoded) if unknown[i] < len(ids)]
        kept = set(usable)
        for i, ids in enumerate(encoded):
            if i not in kept:
                results[i] = {"text": texts[i], "label": None, "probs": None,
                              "error": "empty text" if not ids else "every word is unknown to the vocabulary"}
        usable.sort(key=lambda i: -len(encoded[i]))
        for start in range(0, len(usable), batch_size):
            rows = usable[start:start + batch_size]
            self.governor.tick()
            lengths = torch.tensor([len(encoded[i]) for i in rows])
            ids = torch.zeros(len(rows), int(lengths[0]), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
            probs = torch.softmax(self.model(ids.to(self.device), lengths).float(), dim=1).cpu().numpy()
            for r, i in enumerate(rows):
                results[i] = {"text": texts[i], "label": self.labels[int(np.argmax(probs[r]))],
                              "probs": {n: round(float(p), 4) for n, p in zip(self.labels, probs[r])},
                              "unk": unknown[i]}
        return results


def iter_inputs(lines: Iterable[str], jsonl_field: str | None = None) -> Iterator[tuple[str, dict | None]]:
    """(text, the record's other fields) from lines, as they come. Plain text: each line is a text
    (a blank one too, whose result says "empty text", so the results line up with the lines), with
    no fields. JSON lines: each record's ``jsonl_field`` and its other fields (blank lines skipped)."""
    import json

    for n, line in enumerate(lines, 1):
        if jsonl_field is None:
            yield line, None
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise PipelineError(f"line {n} is not JSON; pass one JSON object per line with --jsonl") from None
        if not isinstance(record, dict) or not isinstance(record.get(jsonl_field), str):
            raise PipelineError(f"line {n} has no text field '{jsonl_field}'; name the text field with --jsonl FIELD")
        text = record.pop(jsonl_field)
        yield text, record
