"""Stage ``vocab``: a frequency-capped vocabulary built from the training split.

Order is deterministic: the specials first (``<pad>`` = 0, ``<unk>`` = 1), then
tokens by count descending, ties broken by the token string (code-point order).

Counts are exact and memory is bounded whatever the corpus: :class:`TokenCounter`
spills running counts to a scratch folder in hash parts and sums each part on its
own, and :class:`TopTokens` keeps only the best ``max_size`` tokens seen so far, so
no step holds every distinct token of the train split (``max_size: 0`` keeps them
all in the vocabulary, by request).

Output contract (``<out>/``)::

    vocab.tsv     one line per id: token<TAB>count (specials have count 0);
                  line i is id i
    metrics.json  size, coverage of training tokens, and per split the share
                  of tokens replaced by <unk> (DVC metrics)
    params.json   the vocab params
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .core.config import VocabConfig
from .core.errors import PipelineError
from .core.fileio import (arrow_batches, atomic_path, iter_arrow, read_parts, scratch_dir, sha256_file, write_json,
                     write_parts)
from .core.integrity import sealed_dir, verify_dir
from .progress import Heartbeat, log
from .core.schema import PAD, PAD_ID, SPECIALS, SPLITS, UNK, UNK_ID  # noqa: F401  (re-exported)



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


def count_tokens(tokens: pa.ChunkedArray | pa.Array) -> pa.Table:
    """Distinct tokens of a ``list<string>`` column with their counts (C++ hash count): ``token``, ``count``."""
    flat = pc.list_flatten(tokens)
    if len(flat) == 0:
        return pa.table({"token": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    vc = pc.value_counts(flat)
    return pa.table({"token": vc.field("values"), "count": vc.field("counts")})


_TOTALS = pa.schema([("token", pa.large_string()), ("count", pa.int64())])
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def token_part(tokens: pa.Array, parts: int) -> np.ndarray:
    """The part (``0 .. parts - 1``) of each string: an FNV-1a hash of its byte length, its first 16
    and its last 8 bytes, computed on the Arrow buffers. Equal strings always get the same part."""
    tokens = tokens.cast(pa.large_string())
    offsets = np.frombuffer(tokens.buffers()[1], np.int64)[tokens.offset: tokens.offset + len(tokens) + 1]
    data = np.frombuffer(tokens.buffers()[2] or b"\0", np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    longest = int(lengths.max(initial=0))
    h = (np.full(len(tokens), _FNV_OFFSET) ^ lengths.astype(np.uint64)) * _FNV_PRIME
    for j in range(min(16, longest)):
        byte = data[np.minimum(starts + j, len(data) - 1)].astype(np.uint64)
        h = np.where(lengths > j, (h ^ byte) * _FNV_PRIME, h)
    for j in range(1, min(8, longest) + 1):
        byte = data[np.maximum(ends - j, 0)].astype(np.uint64)
        h = np.where(lengths >= j, (h ^ byte) * _FNV_PRIME, h)
    h ^= h >> np.uint64(29)  # the low bits pick the part; fold the high ones in
    return (h % np.uint64(parts)).astype(np.int64)


def sum_counts(tables: Sequence[pa.Table]) -> pa.Table:
    """The ``token``, ``count`` rows of ``tables`` summed per distinct token (as ``large_string``, so any
    amount of text fits): one hash table of the distinct tokens (a dictionary encoding) and a
    bincount, about half the memory of an Arrow group-by. The float64 sums are exact below 2**53."""
    tokens = pa.concat_arrays([chunk.cast(pa.large_string()) for t in tables for chunk in t.column("token").chunks])
    counts = np.concatenate([t.column("count").to_numpy() for t in tables])
    encoded = pc.dictionary_encode(tokens)
    sums = np.bincount(encoded.indices.to_numpy(), weights=counts, minlength=len(encoded.dictionary))
    return pa.table({"token": encoded.dictionary, "count": sums.astype(np.int64)})


class TokenCounter:
    """Exact token counts of a stream of token batches, in memory bounded whatever the corpus.

    Each batch is counted in C++ (``value_counts``); once the batches' counts
    hold ``MERGE_ROWS`` rows they are added to the running counts
    (:func:`sum_counts`). Given a ``scratch`` folder, running counts of more
    than ``SPILL_TYPES`` distinct tokens are written there as one Arrow file of
    ``PARTS`` record batches, split by :func:`token_part`, and memory starts
    empty again. :meth:`totals` then sums each part over the files on its own:
    every count of a token lies in the same part, so each part's sums are exact.

    Memory: at most ``SPILL_TYPES`` + ``MERGE_ROWS`` rows while counting (~250 MB
    with the hash table), and one part's distinct tokens, 1/``PARTS`` of the
    split's, at the end: under ``SPILL_TYPES`` up to 64 M distinct tokens (IMDB's
    train split has 82 k), growing slowly beyond. Without ``scratch`` (a Ray
    task's few batches) nothing is written.
    """

    MERGE_ROWS = 1 << 20
    SPILL_TYPES = 1 << 20
    PARTS = 64

    def __init__(self, scratch: Path | None = None) -> None:
        self._counts: pa.Table | None = None  # running counts, one row per distinct token
        self._pending: list[pa.Table] = []  # batches' counts not merged yet
        self._pending_rows = 0
        self._scratch = scratch
        self.spills: list[Path] = []

    def add(self, tokens: pa.Array | pa.ChunkedArray) -> None:
        counts = count_tokens(tokens)
        if counts.num_rows:
            self._pending.append(counts)
            self._pending_rows += counts.num_rows
        if self._pending_rows > self.MERGE_ROWS:
            self._merge()
            if self._scratch is not None and self._counts.num_rows > self.SPILL_TYPES:
                self._spill()

    def _merge(self) -> None:
        parts = ([self._counts] if self._counts is not None else []) + self._pending
        self._pending, self._pending_rows = [], 0
        self._counts = sum_counts(parts) if len(parts) > 1 else (parts[0] if parts else None)

    def _spill(self) -> None:
        counts = self._counts.combine_chunks().to_batches()[0]
        path = self._scratch / f"counts-{len(self.spills):05d}.arrow"
        write_parts(path, counts, token_part(counts.column(0), self.PARTS), self.PARTS)
        self.spills.append(path)
        log(f"vocab: the counts of {counts.num_rows:,} distinct tokens written to {path.name}; counting on")
        self._counts = None

    def totals(self) -> Iterator[pa.Table]:
        """Exact totals (``token``, ``count``) in pieces; each distinct token is in exactly one piece."""
        self._merge()
        if not self.spills:
            if self._counts is not None:
                yield self._counts
            return
        if self._counts is not None:
            self._spill()
        for part in read_parts(self.spills, self.PARTS):
            yield sum_counts([part])


class TopTokens:
    """The vocabulary from exact totals that arrive in pieces (each token in one piece): the
    specials, then tokens counted at least ``min_freq`` times, by count descending then token
    (code-point order), ``max_size`` ids in all (0 = no cap). Holds the best so far plus a
    buffer, never every distinct token, and counts the distinct tokens it saw (``types``)."""

    _ORDER = [("count", "descending"), ("token", "ascending")]

    def __init__(self, min_freq: int, max_size: int) -> None:
        self.min_freq, self.limit = min_freq, max(max_size - len(SPECIALS), 0) if max_size else None
        self.types = 0
        self._kept: list[pa.Table] = [_TOTALS.empty_table()]
        self._rows = 0

    def add(self, totals: pa.Table) -> None:
        self.types += totals.num_rows
        totals = totals.select(["token", "count"]).cast(_TOTALS)
        words = pc.invert(pc.is_in(totals.column("token"), pa.array(SPECIALS, pa.large_string())))
        totals = totals.filter(pc.and_(pc.greater_equal(totals.column("count"), self.min_freq), words))
        self._kept.append(totals)
        self._rows += totals.num_rows
        if self.limit is not None and self._rows > max(2 * self.limit, 1 << 20):
            self._select()

    def _select(self) -> pa.Table:
        table = pa.concat_tables(self._kept)
        table = table.take(pc.sort_indices(table, sort_keys=self._ORDER))
        if self.limit is not None:
            table = table.slice(0, self.limit)
        self._kept, self._rows = [table], table.num_rows
        return table

    def vocabulary(self) -> "Vocabulary":
        table = self._select()
        return Vocabulary(list(SPECIALS) + table.column("token").to_pylist(),
                          [0] * len(SPECIALS) + table.column("count").to_pylist())


def build_vocab(tokens: pa.ChunkedArray | pa.Array, min_freq: int = 1, max_size: int = 0) -> Vocabulary:
    """Specials, then tokens with count >= ``min_freq`` by count desc then token, capped at ``max_size`` ids in all.

    ``max_size`` counts the specials; 0 means no cap (:class:`VocabConfig` checks both).
    """
    top = TopTokens(min_freq, max_size)
    top.add(count_tokens(tokens))
    return top.vocabulary()


def unk_rate(vocab: Vocabulary, tokens: pa.ChunkedArray | pa.Array) -> dict:
    """Tokens and the share replaced by ``<unk>`` (fairseq's "% replaced by <unk>")."""
    total, unknown = _unk_counts(vocab, tokens)
    return {"tokens": total, "unk_tokens": unknown, "unk_rate": round(unknown / total, 6) if total else 0.0}


def _unk_counts(vocab: Vocabulary, tokens: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    flat = pc.list_flatten(tokens)
    if not len(flat):
        return 0, 0
    return len(flat), int(pc.sum(pc.is_null(pc.index_in(flat, value_set=vocab._arrow))).as_py() or 0)


def count_file(path: Path, scratch: Path) -> Iterator[pa.Table]:
    """Exact token totals of a token file in pieces (:meth:`TokenCounter.totals`), counted batch by
    batch, spilling to ``scratch`` (:func:`pipeline.ray_engine.count_tokens` is the distributed equivalent)."""
    counter = TokenCounter(scratch)
    batches = arrow_batches(path)
    beat = Heartbeat("vocab: counting", batches)
    with tqdm(total=batches, desc="vocab", unit="batch", disable=None) as bar:
        for i, batch in enumerate(iter_arrow(path, ["tokens"]), 1):
            counter.add(batch.column(0))
            bar.update()
            beat.tick(i)
    yield from counter.totals()


def vocab_stage(tokens_dir: str | Path, out_dir: str | Path, cfg: VocabConfig,
                count: Callable[[Path, Path], Iterable[pa.Table]] = count_file) -> dict:
    """Build the vocabulary from ``<tokens_dir>/train.arrow`` (exact totals in pieces from ``count``,
    given a scratch folder beside ``out_dir``) and report OOV rates per split, streaming."""
    tokens_dir = Path(tokens_dir)
    verify_dir(tokens_dir, "tokenize")
    if not (tokens_dir / "train.arrow").exists():
        raise PipelineError(f"{tokens_dir}/train.arrow not found; run `textpipe tokenize` first")
    top = TopTokens(cfg.min_freq, cfg.max_size)
    with scratch_dir(out_dir) as scratch:
        for totals in count(tokens_dir / "train.arrow", scratch):
            top.add(totals)
    vocab = top.vocabulary()
    kept = len(vocab) - len(SPECIALS)
    if kept == 0:
        raise PipelineError(f"no word of the train split occurs vocab.min_freq ({cfg.min_freq}) times, so the "
                            f"vocabulary would hold no word ({top.types:,} distinct tokens seen); lower vocab.min_freq")
    metrics = {
        "size": len(vocab),
        "train_types": top.types,
        "train_types_kept": round(kept / top.types, 6) if top.types else 0.0,
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
