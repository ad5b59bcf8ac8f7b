"""Classify new text with a trained model, tokenized exactly as in training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .errors import PipelineError
from .tokenize import TOKENIZE_DEFAULTS, ParallelTokenizer, TextNormalizer
from .train import load_checkpoint, model_from_checkpoint
from .vocab import UNK_ID, Vocabulary


class Predictor:
    """Loads the model and vocabulary of one dataset; ``predict(texts)`` returns labels and probabilities."""

    def __init__(self, model_path: str | Path, vocab_path: str | Path):
        self.ckpt = load_checkpoint(model_path, vocab_path)
        self.vocab = Vocabulary.load(vocab_path)
        self.labels = list(self.ckpt["labels"])
        pre = json.loads(self.ckpt.get("preprocess", "{}"))
        tok = {**TOKENIZE_DEFAULTS, **pre.get("tokenize", {})}
        self.max_len = int(pre.get("bucket", {}).get("max_len") or 0)
        self.tokenizer = ParallelTokenizer(tok["lang"], tok["spacy_pipeline"],
                                           TextNormalizer(tok["lowercase"], tok["strip_html"], tok["normalize_whitespace"]),
                                           workers=1)
        self.model = model_from_checkpoint(self.ckpt, torch.device("cpu"))

    @torch.no_grad()
    def predict(self, texts: list[str]) -> list[dict]:
        if not texts:
            raise PipelineError("no text to classify; pass text as arguments, --file FILE, or on stdin")
        with self.tokenizer as tok:
            tokens = tok.tokenize(texts, desc="predict").to_pylist()
        results = []
        for text, toks in zip(texts, tokens):
            ids = self.vocab.encode(toks)[: self.max_len or None]
            known = sum(i != UNK_ID for i in ids)
            if not ids or known == 0:
                results.append({"text": text, "label": None, "probs": None,
                                "error": "empty text" if not ids else "every word is unknown to the vocabulary"})
                continue
            logits = self.model(torch.tensor([ids]), torch.tensor([len(ids)]))
            probs = torch.softmax(logits, dim=1)[0].numpy()
            results.append({"text": text, "label": self.labels[int(np.argmax(probs))],
                            "probs": {n: round(float(p), 4) for n, p in zip(self.labels, probs)}, "unk": len(ids) - known})
        return results
