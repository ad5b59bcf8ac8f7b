"""Stage ``bucket``: token ids, length buckets and the padding they save.

Output contract (``<out>/``)::

    <split>.arrow   Arrow IPC file, columns:
                      ids (list<int32>: a doc longer than ``max_len`` keeps its first
                        ``int(max_len * keep_head)`` tokens and its last ones, see
                        :func:`kept_positions`), label (int64), length (int32),
                      row (int64: the row's index in the raw split), bucket (int16)
                    schema metadata: class names (b"textpipe.labels")
    buckets.json    the bucket upper bounds (inclusive) computed on train
    metrics.json    padding waste (pad tokens / all tokens) of a batch of
                    ``batch_size`` with random vs length-bucketed batching, per split
                    (random: on a uniform sample of ``LengthStats.SAMPLE`` rows when
                    a split has more)
    params.json     the params of tokenize, vocab and bucket (so downstream
                    stages and `predict` can tokenize new text the same way)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .core.config import BucketConfig
from .core.errors import PipelineError
from .core.fileio import ArrowWriter, arrow_schema, iter_arrow, read_json, write_json
from .core.integrity import sealed_dir, verify_dir
from .core.schema import SPLITS
from .vocab import UNK_ID, Vocabulary


class LengthStats:
    """A split's row lengths in memory that does not grow with its rows: a histogram (exact bucket
    bounds, bucket sizes and sorted-batch padding) and a uniform sample of up to ``SAMPLE`` rows
    (random-batch padding), which holds every row, in order, while there are no more than that."""

    SAMPLE = 1 << 20

    def __init__(self, seed: int = 0) -> None:
        self.counts = np.zeros(1, np.int64)  # counts[L] = rows of length L
        self.rows = 0
        self.sample = np.zeros(0, np.int64)
        self._rng = np.random.default_rng([seed, 1])  # not the seed's own stream: random_padding_waste's

    def add(self, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, np.int64)
        hist = np.bincount(lengths) if len(lengths) else np.zeros(1, np.int64)
        if len(hist) > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(len(hist) - len(self.counts), np.int64)])
        self.counts[:len(hist)] += hist
        room = max(self.SAMPLE - len(self.sample), 0)
        if room:  # once the sample is full it is only written into, never copied
            self.sample = np.concatenate([self.sample, lengths[:room]])
        rest = lengths[room:]
        if len(rest):  # reservoir sampling: row i replaces a random slot with probability SAMPLE / (i + 1)
            slot = self._rng.integers(0, self.rows + room + np.arange(len(rest)) + 1)
            keep = slot < self.SAMPLE
            self.sample[slot[keep]] = rest[keep]
        self.rows += len(lengths)

    @property
    def longest(self) -> int:
        nonzero = np.flatnonzero(self.counts)
        return int(nonzero[-1]) if len(nonzero) else 0


def bucket_boundaries(stats: LengthStats, spec: int | Sequence[int]) -> list[int]:
    """Inclusive upper bounds of the length buckets.

    ``spec`` is either an explicit increasing list of bounds (a last bucket for
    longer rows is added) or a number of buckets placed at length quantiles, so
    each holds about the same number of rows (``np.quantile(lengths, i / n,
    method="inverted_cdf")``, computed on the histogram). The last bound is always
    the longest length, so every row falls in a bucket. (:class:`BucketConfig`
    checks ``spec``.)
    """
    longest = stats.longest
    if isinstance(spec, (list, tuple)):
        bounds = [int(b) for b in spec]
    else:
        n = int(spec)
        bounds = sorted({int(q) for q in _quantiles(stats.counts, np.arange(1, n + 1) / n)}) if stats.rows else []
    bounds = [b for b in bounds if b < longest] + [max(longest, 1)]
    return bounds


def _quantiles(counts: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """``np.quantile(lengths, qs, method="inverted_cdf")`` of the rows a length histogram describes."""
    index = counts.sum() * qs - 1  # numpy's rank arithmetic for inverted_cdf, to the bit
    previous = np.floor(index)
    rank = np.where(index - previous == 0, previous, previous + 1).astype(np.int64).clip(min=0)
    return np.searchsorted(np.cumsum(counts), rank, side="right")


def assign_buckets(lengths: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """Bucket index of each length: the first bound >= length (lengths above the last bound go last)."""
    idx = np.searchsorted(np.asarray(bounds), np.asarray(lengths), side="left")
    return np.minimum(idx, len(bounds) - 1).astype(np.int16)


def bucket_rows(stats: LengthStats, bounds: Sequence[int]) -> list[int]:
    """Rows per bucket."""
    buckets = assign_buckets(np.arange(len(stats.counts)), bounds)
    return np.bincount(buckets, weights=stats.counts, minlength=len(bounds)).astype(np.int64).tolist()


def sorted_padding_waste(stats: LengthStats, batch_size: int) -> float:
    """Pad tokens / all tokens when rows sorted by length are cut into batches of ``batch_size``, each
    padded to its longest row (as the training sampler does within a bucket; buckets are ranges
    of length, so sorting by bucket then length is sorting by length). Exact, from the histogram:
    a full batch ends at every ``batch_size``-th row, the last partial one at the longest."""
    if not stats.rows:
        return 0.0
    length = np.arange(len(stats.counts))
    full_batches_ending = np.diff(np.cumsum(stats.counts) // batch_size, prepend=0)
    padded = int((full_batches_ending * length).sum()) * batch_size + (stats.rows % batch_size) * stats.longest
    return _waste(padded, int((stats.counts * length).sum()))


def random_padding_waste(lengths: np.ndarray, batch_size: int, seed: int = 0) -> float:
    """Pad tokens / all tokens over batches of ``batch_size`` rows in a random order (seeded), each
    padded to its longest row: what batching without length buckets would waste."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return 0.0
    order = np.random.default_rng(seed).permutation(len(lengths))
    padded = 0
    for start in range(0, len(order), batch_size):
        batch = lengths[order[start:start + batch_size]]
        padded += int(batch.max()) * len(batch)
    return _waste(padded, int(lengths.sum()))


def _waste(padded: int, real: int) -> float:
    """Pad tokens / all tokens, as the metrics report it."""
    return round((padded - real) / padded, 6) if padded else 0.0


def kept_positions(lengths: np.ndarray, max_len: int, keep_head: float) -> tuple[np.ndarray | None, np.ndarray]:
    """Which tokens of docs laid end to end survive truncation: ``(index, new_lengths)``.

    A doc longer than ``max_len`` (> 0) keeps its first ``int(max_len * keep_head)`` tokens and its
    last ``max_len`` minus those; shorter docs stay whole. ``index`` points into the concatenated
    tokens, in order; it is None when no doc is cut (keep everything). Review-like texts often say
    most at their start and their end (Sun et al. 2019 found head + tail best on IMDB).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not max_len or not (lengths > max_len).any():
        return None, lengths
    head = np.where(lengths > max_len, int(max_len * keep_head), lengths)
    tail = np.minimum(lengths, max_len) - head
    starts = np.cumsum(lengths) - lengths
    seg_start = np.stack([starts, starts + lengths - tail], axis=1).ravel()
    seg_len = np.stack([head, tail], axis=1).ravel()
    out_start = np.cumsum(seg_len) - seg_len
    index = np.arange(int(seg_len.sum()), dtype=np.int64) + np.repeat(seg_start - out_start, seg_len)
    return index, head + tail


def truncate_docs(docs: Sequence[Sequence[int]], max_len: int, keep_head: float) -> list[list[int]]:
    """:func:`kept_positions` on a few docs held as lists (what ``predict`` encodes)."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    index, new_len = kept_positions(lengths, max_len, keep_head)
    if index is None:
        return [list(d) for d in docs]
    flat = np.fromiter((x for d in docs for x in d), dtype=np.int64, count=int(lengths.sum()))[index]
    return [part.tolist() for part in np.split(flat, np.cumsum(new_len)[:-1])]


def encode_split(table: pa.Table, vocab: Vocabulary, max_len: int, keep_head: float,
                 first_row: int = 0) -> tuple[pa.Table, dict]:
    """Tokens -> int32 ids, long docs cut to ``max_len`` (if > 0) by :func:`kept_positions`; empty docs
    become one ``<unk>``. ``table`` may be one batch of a split; ``first_row`` is the split index of
    its first row.
    """
    tokens = table.column("tokens").combine_chunks()
    lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
    truncated = int((lengths > max_len).sum()) if max_len else 0
    flat = pc.list_flatten(tokens)
    index, new_len = kept_positions(lengths, max_len, keep_head)
    if index is not None:
        flat = flat.take(pa.array(index))
    ids = vocab.encode_arrow(flat)
    empty = new_len == 0
    if empty.any():
        # Put one <unk> in each empty doc so every row has a real step to feed the RNN.
        id_list = pa.ListArray.from_arrays(pa.array(_offsets(new_len)), ids).to_pylist()
        id_list = [row if row else [UNK_ID] for row in id_list]
        new_len = np.where(empty, 1, new_len)
        ids = pa.array([i for row in id_list for i in row], pa.int32())
    out = pa.table({
        "ids": pa.ListArray.from_arrays(pa.array(_offsets(new_len)), ids),
        "label": table.column("label"),
        "length": pa.array(new_len.astype(np.int32)),
        "row": pa.array(np.arange(first_row, first_row + table.num_rows, dtype=np.int64)),
    }, metadata=table.schema.metadata)
    return out, {"rows": out.num_rows, "truncated": truncated, "empty_as_unk": int(empty.sum())}


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def encoded_lengths(tokens_path: Path, max_len: int, seed: int = 0) -> LengthStats:
    """The lengths rows will have after :func:`encode_split` (truncated; empty -> 1), read column-only."""
    stats = LengthStats(seed)
    for batch in iter_arrow(tokens_path, ["length"]):
        lengths = batch.column(0).to_numpy().astype(np.int64)
        stats.add(np.maximum(np.minimum(lengths, max_len) if max_len else lengths, 1))
    return stats


IDS_SCHEMA = pa.schema([("ids", pa.list_(pa.int32())), ("label", pa.int64()), ("length", pa.int32()),
                        ("row", pa.int64()), ("bucket", pa.int16())])


def bucket_stage(tokens_dir: str | Path, vocab_path: str | Path, out_dir: str | Path, cfg: BucketConfig) -> dict:
    """Encode every split batch by batch into ``out_dir``. Nothing is held per row: the lengths' histogram
    and a bounded sample (:class:`LengthStats`) give the train quantiles and the padding-waste figures."""
    tokens_dir = Path(tokens_dir)
    verify_dir(tokens_dir, "tokenize")
    verify_dir(Path(vocab_path).parent, "vocab")
    vocab = Vocabulary.load(vocab_path)
    splits = [s for s in SPLITS if (tokens_dir / f"{s}.arrow").exists()]
    if "train" not in splits:
        raise PipelineError(f"{tokens_dir}/train.arrow not found; run `textpipe tokenize` first")
    lengths = {split: encoded_lengths(tokens_dir / f"{split}.arrow", cfg.max_len, cfg.seed) for split in splits}
    bounds = bucket_boundaries(lengths["train"], cfg.boundaries)
    stats: dict = {"splits": {}}
    with sealed_dir(out_dir) as tmp:
        for split in splits:
            counts = {"rows": 0, "truncated": 0, "empty_as_unk": 0}
            source = tokens_dir / f"{split}.arrow"
            schema = IDS_SCHEMA.with_metadata(arrow_schema(source).metadata)
            with ArrowWriter(tmp / f"{split}.arrow", schema) as writer:
                for batch in iter_arrow(source):
                    table, c = encode_split(pa.Table.from_batches([batch]), vocab, cfg.max_len, cfg.keep_head,
                                            counts["rows"])
                    buckets = assign_buckets(table.column("length").to_numpy(), bounds)
                    writer.write(table.append_column("bucket", pa.array(buckets)).cast(schema))
                    counts = {k: counts[k] + c[k] for k in counts}
            stats["splits"][split] = {
                **counts,
                "padding_waste_random": random_padding_waste(lengths[split].sample, cfg.batch_size, cfg.seed),
                "padding_waste_bucketed": sorted_padding_waste(lengths[split], cfg.batch_size),
                "bucket_rows": bucket_rows(lengths[split], bounds),
            }
        stats["boundaries"] = bounds
        stats["batch_size"] = cfg.batch_size
        write_json(tmp / "buckets.json", {"boundaries": bounds})
        upstream = {**read_json(tokens_dir / "params.json"), **read_json(Path(vocab_path).parent / "params.json")}
        write_json(tmp / "params.json", {**upstream, "bucket": cfg.content_params()})
        write_json(tmp / "metrics.json", stats)
    return stats
