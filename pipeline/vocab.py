"""Stage ``vocab``: a frequency-capped vocabulary built from the training split.

Order is deterministic: the specials first (``<pad>`` = 0, ``<unk>`` = 1), then
tokens by count descending, ties broken by the token string (code-point order).

Output contract (``<out>/``)::

    vocab.tsv     one line per id: token<TAB>count (specials have count 0);
                  line i is id i
    metrics.json  size, coverage of training tokens, and per split the share
                  of tokens replaced by <unk> (DVC metrics)
    params.json   the vocab params
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import VocabConfig
from .errors import PipelineError
from .fileio import atomic_path, iter_arrow, sha256_file, write_json
from .integrity import sealed_dir, verify_dir
from .schema import PAD, PAD_ID, SPECIALS, SPLITS, UNK, UNK_ID  # noqa: F401  (re-exported)



class Vocabulary:
    """Token <-> id mapping with the training counts it was built from."""

    def __init__(self, tokens: Sequence[str], counts: Sequence[int]):
        if list(tokens[:2]) != list(SPECIALS):
            raise PipelineError(f"a vocabulary must start with {PAD} and {UNK}")
        if len(set(tokens)) != len(tokens):
            raise PipelineError("vocabulary has duplicate tokens; rebuild it with `textpipe vocab`")
        self.itos = list(tokens)
        self.counts = [int(c) for c in counts]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        # What text maps to: a literal "<pad>" in the text is an unknown word, never padding.
        self._lookup = {t: i for t, i in self.stoi.items() if i != PAD_ID}
        self._arrow = pa.array(self.itos, pa.string())

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of text tokens; unknown tokens (and a literal ``<pad>``) become ``<unk>``."""
        lookup = self._lookup
        return [lookup.get(t, UNK_ID) for t in tokens]

    def encode_arrow(self, tokens: pa.Array | pa.ChunkedArray) -> pa.Array:
        """:meth:`encode` for a flat string array, in C++: unknown tokens and ``<pad>`` become ``<unk>``."""
        index = pc.fill_null(pc.index_in(tokens, value_set=self._arrow), UNK_ID)
        # A literal "<pad>" in the text is an unknown word, never padding.
        return pc.if_else(pc.equal(index, PAD_ID), UNK_ID, index).cast(pa.int32())

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for token, count in zip(self.itos, self.counts):
                f.write(f"{token}\t{count}\n")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        if not path.exists():
            raise PipelineError(f"vocabulary {path} not found; run `textpipe vocab` (or `dvc repro vocab`) first")
        tokens, counts = [], []
        with open(path, encoding="utf-8", newline="\n") as f:
            for lineno, line in enumerate(f, 1):
                token, sep, count = line.rstrip("\n").rpartition("\t")
                if not sep or not count.isdigit():
                    raise PipelineError(f"{path}:{lineno} is not 'token<TAB>count'; rebuild the vocabulary")
                tokens.append(token)
                counts.append(int(count))
        return cls(tokens, counts)


def count_tokens(tokens: pa.ChunkedArray | pa.Array) -> tuple[list[str], np.ndarray]:
    """Distinct tokens of a ``list<string>`` column with their counts (C++ hash count)."""
    flat = pc.list_flatten(tokens)
    if len(flat) == 0:
        return [], np.zeros(0, dtype=np.int64)
    vc = pc.value_counts(flat)
    return vc.field("values").to_pylist(), vc.field("counts").to_numpy()


class TokenCounter:
    """Token counts merged from per-batch counts, so a split is never held whole.

    Each batch is counted in C++ (``value_counts``); the partial counts are
    merged with an Arrow group-by whenever they pile up, so memory follows the
    number of distinct tokens, not the corpus size.
    """

    MERGE_ROWS = 1 << 21

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []
        self._rows = 0

    def add(self, tokens: pa.Array | pa.ChunkedArray) -> None:
        flat = pc.list_flatten(tokens)
        if len(flat):
            vc = pc.value_counts(flat)
            self._parts.append(pa.table({"token": vc.field("values"), "count": vc.field("counts")}))
            self._rows += len(vc)
        if self._rows > self.MERGE_ROWS:
            self._merge()

    def _merge(self) -> None:
        if len(self._parts) > 1:
            merged = pa.concat_tables(self._parts).group_by("token").aggregate([("count", "sum")])
            self._parts = [merged.rename_columns(["token", "count"])]
        self._rows = self._parts[0].num_rows if self._parts else 0

    def result(self) -> tuple[list[str], np.ndarray]:
        self._merge()
        if not self._parts:
            return [], np.zeros(0, dtype=np.int64)
        table = self._parts[0]
        return table.column("token").to_pylist(), table.column("count").to_numpy()


def build_vocab(tokens: pa.ChunkedArray | None, min_freq: int = 1, max_size: int = 0,
                counted: tuple[list[str], np.ndarray] | None = None) -> Vocabulary:
    """Specials, then tokens with count >= ``min_freq`` by count desc then token, capped at ``max_size`` ids in all.

    ``max_size`` counts the specials; 0 means no cap (:class:`VocabConfig` checks both).
    """
    words, counts = counted if counted is not None else count_tokens(tokens)
    ranked = sorted((w for w, c in zip(words, counts) if c >= min_freq and w not in SPECIALS),
                    key=lambda w: w)  # stable secondary key
    count_of = dict(zip(words, counts.tolist()))
    ranked.sort(key=lambda w: -count_of[w])
    if max_size:
        ranked = ranked[: max_size - len(SPECIALS)]
    return Vocabulary(list(SPECIALS) + ranked, [0, 0] + [count_of[w] for w in ranked])


def unk_rate(vocab: Vocabulary, tokens: pa.ChunkedArray | pa.Array) -> dict:
    """Tokens and the share replaced by ``<unk>`` (fairseq's "% replaced by <unk>")."""
    total, unknown = _unk_counts(vocab, tokens)
    return {"tokens": total, "unk_tokens": unknown, "unk_rate": round(unknown / total, 6) if total else 0.0}


def _unk_counts(vocab: Vocabulary, tokens: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    flat = pc.list_flatten(tokens)
    if not len(flat):
        return 0, 0
    return len(flat), int(pc.sum(pc.is_null(pc.index_in(flat, value_set=vocab._arrow))).as_py() or 0)


def count_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Distinct tokens and counts of a token file: per-batch counts merged locally
    (:func:`pipeline.ray_engine.count_tokens` is the distributed equivalent)."""
    counter = TokenCounter()
    for batch in iter_arrow(path, ["tokens"]):
        counter.add(batch.column(0))
    return counter.result()


def vocab_stage(tokens_dir: str | Path, out_dir: str | Path, cfg: VocabConfig,
                count: Callable[[Path], tuple[list[str], np.ndarray]] = count_file) -> dict:
    """Build the vocabulary from ``<tokens_dir>/train.arrow`` (counted by ``count``) and report OOV rates
    per split, streaming."""
    tokens_dir = Path(tokens_dir)
    verify_dir(tokens_dir, "tokenize")
    if not (tokens_dir / "train.arrow").exists():
        raise PipelineError(f"{tokens_dir}/train.arrow not found; run `textpipe tokenize` first")
    words, counts = count(tokens_dir / "train.arrow")
    vocab = build_vocab(None, cfg.min_freq, cfg.max_size, counted=(words, counts))
    kept = len(vocab) - len(SPECIALS)
    metrics = {
        "size": len(vocab),
        "train_types": len(words),
        "train_types_kept": round(kept / len(words), 6) if words else 0.0,
        "splits": {},
    }
    for split in SPLITS:
        path = tokens_dir / f"{split}.arrow"
        if path.exists():
            total = unknown = 0
            for batch in iter_arrow(path, ["tokens"]):
                t, u = _unk_counts(vocab, batch.column(0))
                total, unknown = total + t, unknown + u
            rate = round(unknown / total, 6) if total else 0.0
            metrics["splits"][split] = {"tokens": total, "unk_tokens": unknown, "unk_rate": rate,
                                        "coverage": round(1 - rate, 6)}
    with sealed_dir(out_dir) as tmp:
        vocab.save(tmp / "vocab.tsv")
        metrics["sha256"] = sha256_file(tmp / "vocab.tsv")
        write_json(tmp / "params.json", {"vocab": cfg.content_params()})
        write_json(tmp / "metrics.json", metrics)
    return metrics
