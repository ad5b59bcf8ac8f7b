"""Classify new text with a trained model, tokenized exactly as in training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import BucketConfig, TokenizeConfig
from .errors import PipelineError
from .tokenize import ParallelTokenizer
from .vocab import UNK_ID, Vocabulary


class Predictor:
    """Loads the model and vocabulary of one dataset; ``predict(texts)`` returns labels and probabilities."""

    def __init__(self, model_path: str | Path, vocab_path: str | Path):
        self.ckpt = load_checkpoint(model_path, vocab_path)
        self.vocab = Vocabulary.load(vocab_path)
        self.labels = list(self.ckpt["labels"])
        pre = self.ckpt["preprocess"]
        self.max_len = BucketConfig.from_block(pre.get("bucket")).max_len
        self.tokenizer = ParallelTokenizer.from_config(TokenizeConfig.from_block(pre.get("tokenize")), workers=1)
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
