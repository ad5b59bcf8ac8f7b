"""Stage ``shard``: length-bucketed, uncompressed Arrow IPC shards and their manifest.

No global sort: one pass spills each split's rows to one temporary file per
length bucket (input order); then every bucket is cut into shards of about
``shard_size_mb`` and each shard is sorted by length within itself (ties in
input order). Memory holds one shard at a time, whatever the split's size.

Output contract (``<out>/``)::

    <split>-<nnnnn>.arrow  Arrow IPC file (Feather v2), uncompressed so it can
                           be memory-mapped zero-copy; shards in bucket order,
                           each holding rows of one bucket sorted by length;
                           columns:
                             ids (list<int32>), label (int64), length (int32),
                             row (int64, index in the raw split), bucket (int16)
    manifest.json          written last. format, schema, class names, bucket
                           bounds, vocabulary sha256 and size, per split the
                           shard files with bucket, rows, tokens, min/max
                           length, bytes and sha256; the params that produced
                           them (tokenize, vocab, bucket, shard).

:class:`ShardReader` is the only supported way to read them: it checks every
checksum and the vocabulary hash before handing out memory-mapped columns.
"""
from __future__ import annotations

import mmap
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from .core.config import ShardConfig
from .core.errors import PipelineError
from .core.fileio import ArrowWriter, arrow_schema, iter_arrow, read_json, sha256_file, write_arrow, write_json
from .core.integrity import sealed_dir, verify_dir
from .core.schema import SPLITS, read_labels

FORMAT = "textpipe-shards/1"


ROW_BYTES = 4 + 8 + 4 + 8 + 2  # per row besides its ids: list offset, label, length, row, bucket


class ShardWriter:
    """Writes one split as shards of about ``target_bytes``, partitioned by length bucket in one pass."""

    def __init__(self, out_dir: str | Path, target_bytes: int):
        self.out_dir = Path(out_dir)
        self.target_bytes = target_bytes

    def write_split(self, split: str, source: Path) -> dict:
        spill = self.out_dir / f".spill-{split}"
        spill.mkdir()
        schema = arrow_schema(source)
        writers: dict[int, ArrowWriter] = {}
        for batch in iter_arrow(source):
            buckets = batch.column("bucket").to_numpy()
            for b in np.unique(buckets).tolist():
                if b not in writers:
                    writers[b] = ArrowWriter(spill / f"{b}.arrow", schema)
                writers[b].write(batch.filter(pa.array(buckets == b)))
        for writer in writers.values():
            writer.close()
        shards: list[dict] = []
        for b in sorted(writers):
            for part in self._cut(iter_arrow(spill / f"{b}.arrow")):
                shards.append(self._write_shard(split, len(shards), b, part))
        shutil.rmtree(spill)
        return {"rows": sum(s["rows"] for s in shards), "tokens": sum(s["tokens"] for s in shards), "shards": shards}

    def _cut(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
        """Consecutive runs of rows of about ``target_bytes`` each (at least one row), input order."""
        buffer: pa.Table | None = None
        for batch in batches:
            buffer = pa.Table.from_batches([batch]) if buffer is None else pa.concat_tables([buffer, pa.Table.from_batches([batch])])
            cum = np.cumsum(buffer.column("length").to_numpy().astype(np.int64) * 4 + ROW_BYTES)
            cuts = _cut_points(cum, self.target_bytes)
            for lo, hi in zip(cuts[:-2], cuts[1:-1]):  # complete shards; the last run may still grow
                yield buffer.slice(lo, hi - lo)
            buffer = buffer.slice(cuts[-2]).combine_chunks()
        if buffer is not None and buffer.num_rows:
            yield buffer

    def _write_shard(self, split: str, index: int, bucket: int, part: pa.Table) -> dict:
        lengths = part.column("length").to_numpy()
        order = np.argsort(lengths, kind="stable")
        name = f"{split}-{index:05d}.arrow"
        path = self.out_dir / name
        write_arrow(part.take(pa.array(order)), path)
        return {"file": name, "bucket": bucket, "rows": part.num_rows, "tokens": int(lengths.sum()),
                "min_length": int(lengths.min()), "max_length": int(lengths.max()),
                "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _cut_points(cum_bytes: np.ndarray, target: int) -> list[int]:
    """Row indices where shards start, so that each holds about ``target`` bytes (at least one row)."""
    n = len(cum_bytes)
    if n == 0:
        return [0, 0]
    cuts, start_bytes = [0], 0
    while cuts[-1] < n:
        nxt = int(np.searchsorted(cum_bytes, start_bytes + target, side="right"))
        nxt = max(nxt, cuts[-1] + 1)
        cuts.append(min(nxt, n))
        start_bytes = int(cum_bytes[cuts[-1] - 1])
    return cuts


def shard_stage(ids_dir: str | Path, vocab_path: str | Path, out_dir: str | Path, cfg: ShardConfig) -> dict:
    ids_dir = Path(ids_dir)
    verify_dir(ids_dir, "bucket")
    verify_dir(Path(vocab_path).parent, "vocab")
    sources = {s: ids_dir / f"{s}.arrow" for s in SPLITS if (ids_dir / f"{s}.arrow").exists()}
    if "train" not in sources:
        raise PipelineError(f"{ids_dir}/train.arrow not found; run `textpipe bucket` first")
    bounds = read_json(ids_dir / "buckets.json")["boundaries"]
    vocab_lines = sum(1 for _ in open(vocab_path, encoding="utf-8"))
    schema = arrow_schema(sources["train"])
    with sealed_dir(out_dir) as tmp:
        writer = ShardWriter(tmp, max(1, int(cfg.shard_size_mb * 2**20)))
        splits = {s: writer.write_split(s, path) for s, path in sources.items()}
        manifest = {
            "format": FORMAT,
            "schema": {f.name: str(f.type) for f in schema},
            "labels": read_labels(schema),
            "boundaries": bounds,
            "vocab": {"sha256": sha256_file(vocab_path), "size": vocab_lines},
            "splits": splits,
            "params": {**read_json(ids_dir / "params.json"), "shard": cfg.content_params()},
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest
@dataclass
class SplitData:
    """One split for training: numpy views of its memory-mapped shards, plus two columns copied whole.

    Per record batch of each shard, no copy: ``values``/``offsets`` (the ids), ``labels``, ``raw_rows``.
    Copied for the whole split: ``lengths`` (int32) and ``buckets`` (int16), what the sampler sorts
    and groups by, 6 bytes a row. Row ``i`` of the split is row ``i - starts[p]`` of part ``p``.
    The pages of the shards that training reads stay mapped (page cache, which the kernel can take
    back under memory pressure, but counted in the process's memory): training draws rows from all
    over the split, a few from each page, so giving pages back as it goes would cost a page fault
    per row.
    """

    values: list[np.ndarray]
    offsets: list[np.ndarray]
    labels: list[np.ndarray]
    raw_rows: list[np.ndarray]
    lengths: np.ndarray
    buckets: np.ndarray

    def __post_init__(self) -> None:
        self.starts = part_starts([len(x) for x in self.labels])

    def __len__(self) -> int:
        return len(self.lengths)

    def locate(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(part, row within the part) of each split row (an empty part shares its start with the next)."""
        idx = np.asarray(indices, dtype=np.int64)
        parts = np.searchsorted(self.starts, idx, side="right") - 1
        return parts, idx - self.starts[parts]

    def row(self, i: int) -> np.ndarray:
        (p,), (r,) = self.locate([i])
        off = self.offsets[p]
        return self.values[p][off[r]:off[r + 1]]

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.row(i) for i in indices]

    def labels_of(self, indices: np.ndarray) -> np.ndarray:
        return self._take(self.labels, indices)

    def raw_rows_of(self, indices: np.ndarray) -> np.ndarray:
        return self._take(self.raw_rows, indices)

    def _take(self, columns: list[np.ndarray], indices: np.ndarray) -> np.ndarray:
        parts, rows = self.locate(indices)
        out = np.zeros(len(rows), dtype=np.int64)
        for p in np.unique(parts):
            sel = parts == p
            out[sel] = columns[p][rows[sel]]
        return out

    def padded(self, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` as one int64 matrix [len(indices), longest], right-padded with 0.

        No Python work per row: each part the rows come from is one fancy-indexing gather
        (start of each row + column number, masked past the row's length)."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[idx].astype(np.int64)
        width = int(lengths.max()) if len(idx) else 0
        out = np.zeros((len(idx), width), dtype=np.int64)
        cols = np.arange(width, dtype=np.int64)
        valid = cols < lengths[:, None]
        parts, rows = self.locate(idx)
        for p in np.unique(parts):
            values = self.values[p]
            if not len(values):
                continue  # every row of this part is empty
            sel = np.flatnonzero(parts == p)
            pos = self.offsets[p][rows[sel]].astype(np.int64)[:, None] + cols
            out[sel] = np.where(valid[sel], values[np.minimum(pos, len(values) - 1)], 0)
        return out


class ShardReader:
    """Opens shards through their manifest, memory-mapped, after checking checksums."""

    def __init__(self, shard_dir: str | Path, vocab_path: str | Path | None = None, verify: bool = True):
        self.dir = Path(shard_dir)
        manifest_path = self.dir / "manifest.json"
        if not manifest_path.exists():
            raise PipelineError(f"{manifest_path} not found; run `textpipe shard` (or `dvc repro shard`) first")
        if verify:  # every shard and the manifest itself against the folder's checksums.json
            verify_dir(self.dir, "shard")
        self.manifest = read_json(manifest_path)
        if self.manifest.get("format") != FORMAT:
            raise PipelineError(f"{manifest_path} has format {self.manifest.get('format')!r}, expected {FORMAT}; rerun `textpipe shard`")
        if vocab_path is not None:
            actual = sha256_file(vocab_path)
            if actual != self.manifest["vocab"]["sha256"]:
                raise PipelineError(
                    f"vocabulary {vocab_path} (sha256 {actual[:12]}) is not the one the shards were built with "
                    f"({self.manifest['vocab']['sha256'][:12]}); rerun `dvc repro` so vocab and shards match"
                )

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def table(self, split: str) -> pa.Table:
        """The split as one Arrow table whose chunks are the memory-mapped shards."""
        tables = [self._open(s["file"]) for s in self._shards(split)]
        return pa.concat_tables(tables) if tables else pa.table({})

    def split(self, split: str) -> SplitData:
        """The split for training: views of each shard's record batches; lengths and buckets copied (and the
        pages read for them given back)."""
        parts = self._split_columns(split)
        lengths = np.concatenate([c.lengths for c in parts]) if parts else np.zeros(0, np.int32)
        buckets = np.concatenate([c.buckets for c in parts]) if parts else np.zeros(0, np.int16)
        give_back_pages(c.mapped for c in parts)  # the length and bucket columns have been copied
        return SplitData([c.values for c in parts], [c.offsets for c in parts], [c.labels for c in parts],
                         [c.raw_rows for c in parts], lengths, buckets)

    def length_ordered(self, split: str, batch_size: int, max_tokens: int = 0) -> Iterator["Batch"]:
        """The split's rows shortest first (ties in split order), cut into batches as
        :class:`~pipeline.sampler.LengthBucketSampler` cuts them without shuffling (at most
        ``batch_size`` rows and, if ``max_tokens`` > 0, ``max_tokens`` padded tokens), each batch's
        rows longest first (ties in split order), as :func:`~pipeline.sampler.collate` stacks them.

        Nothing per row is held: each shard is sorted by length, so the split's length order is a
        merge of the runs of equal length in each record batch (8,192 rows) of each shard, and a
        batch is a few runs copied out of the memory-mapped shards, whose pages are given back as the
        reading moves on (:class:`MappedPages`). Memory holds one batch and 32 bytes per run: a few
        hundred runs per record batch at most, well under a byte per row."""
        columns = self._split_columns(split)
        starts = part_starts([len(c.lengths) for c in columns])
        runs = _length_runs([c.lengths for c in columns])
        give_back_pages(c.mapped for c in columns)  # the length columns have been read
        pages = MappedPages()
        pieces: list[tuple[ShardColumns, int, int, int, int]] = []  # (columns, first row, end row, length, split position)
        filled = 0
        for length, k, lo, hi in (run for at in range(0, len(runs), 4096) for run in runs[at:at + 4096].tolist()):
            cap = batch_size if not (max_tokens and length) else min(batch_size, max(1, max_tokens // length))
            while lo < hi:
                if filled and filled >= cap:  # the next row would break the row cap or the token budget
                    yield _gather(pieces)
                    for c, first, end, n, _ in pieces:
                        pages.read(c.mapped, (end - first) * (4 * n + ROW_BYTES))
                    pieces, filled = [], 0
                take = min(hi - lo, cap - filled)
                pieces.append((columns[k], lo, lo + take, length, int(starts[k]) + lo))
                filled += take
                lo += take
        if pieces:
            yield _gather(pieces)

    def _split_columns(self, split: str) -> list["ShardColumns"]:
        """Every record batch of every shard of the split, in split order."""
        return [c for s in self._shards(split) for c in self._record_batches(s["file"])]

    def _record_batches(self, name: str) -> list["ShardColumns"]:
        """The columns of each record batch of a shard (in order), over a map of its file that
        :class:`MappedPages` can give back pages of."""
        with open(self.dir / name, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        batches = []
        previous = -1
        file = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped)))
        for batch in map(file.get_batch, range(file.num_record_batches)):
            ids, lengths = batch.column("ids"), batch.column("length").to_numpy()
            if len(lengths) and (previous > lengths[0] or bool((lengths[1:] < lengths[:-1]).any())):
                raise PipelineError(f"{self.dir / name} is not sorted by length; rerun `textpipe shard`")
            previous = lengths[-1] if len(lengths) else previous
            batches.append(ShardColumns(ids.values.to_numpy(), ids.offsets.to_numpy(), lengths,  # views: no copy
                                        batch.column("label").to_numpy(), batch.column("row").to_numpy(),
                                        batch.column("bucket").to_numpy(), mapped))
        return batches

    def _shards(self, split: str) -> list[dict]:
        if split not in self.manifest["splits"]:
            raise PipelineError(f"split '{split}' is not in {self.dir}/manifest.json (it has: {', '.join(self.splits)})")
        return self.manifest["splits"][split]["shards"]

    def _open(self, name: str) -> pa.Table:
        source = pa.memory_map(str(self.dir / name), "r")
        return pa.ipc.open_file(source).read_all()


@dataclass
class ShardColumns:
    """One record batch of a shard: its columns as numpy views of the file's map (rows sorted by length)."""

    values: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    raw_rows: np.ndarray
    buckets: np.ndarray
    mapped: mmap.mmap


class MappedPages:
    """Gives back the pages of file maps that have been read, every ``GIVE_BACK_BYTES`` read.

    A page of a memory-mapped file that has been read stays mapped into the process (and counts in
    its memory) until the map is closed, so reading a whole split through maps would hold the split.
    Every so many bytes read, the maps read since are told their pages are not needed
    (``MADV_DONTNEED``): they stay in the page cache, and a page read again is mapped again from it."""

    GIVE_BACK_BYTES = 16 << 20

    def __init__(self) -> None:
        self.maps: dict[int, mmap.mmap] = {}
        self.bytes = 0

    def read(self, mapped: mmap.mmap, nbytes: int) -> None:
        self.maps[id(mapped)] = mapped
        self.bytes += nbytes
        if self.bytes >= self.GIVE_BACK_BYTES:
            self.give_back()

    def give_back(self) -> None:
        give_back_pages(self.maps.values())
        self.maps, self.bytes = {}, 0


def give_back_pages(maps: Iterable[mmap.mmap]) -> None:
    """Tell each of ``maps`` (once) that its pages are not needed (``MADV_DONTNEED``); a page read again
    is mapped again from the page cache. Not on every platform: then the maps stay as they are."""
    if hasattr(mmap, "MADV_DONTNEED"):
        for mapped in {id(m): m for m in maps}.values():
            mapped.madvise(mmap.MADV_DONTNEED)


@dataclass
class Batch:
    """Rows of a split as the model takes them: ``ids`` [B, T] int64 right-padded with 0, and per row its
    length, label, position in the split (shard order) and row number in the raw split."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    raw_rows: np.ndarray


def part_starts(sizes: list[int]) -> np.ndarray:
    """The split position of each part's first row, then the split's row count (int64)."""
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _length_runs(part_lengths: list[np.ndarray]) -> np.ndarray:
    """(length, part, first row, end row) of every run of equal length in every part (a record batch of a
    shard, sorted by length), ordered by length, then part: the stable length order of the whole split,
    a run at a time."""
    runs = []
    for k, lengths in enumerate(part_lengths):
        if not len(lengths):
            continue
        edges = np.flatnonzero(lengths[1:] != lengths[:-1]) + 1
        lo = np.concatenate([[0], edges])
        hi = np.concatenate([edges, [len(lengths)]])
        runs.append(np.stack([lengths[lo].astype(np.int64), np.full(len(lo), k), lo, hi], axis=1))
    if not runs:
        return np.zeros((0, 4), dtype=np.int64)
    runs_all = np.concatenate(runs)
    return runs_all[np.lexsort((runs_all[:, 1], runs_all[:, 0]))]


def _gather(pieces: list[tuple[ShardColumns, int, int, int, int]]) -> Batch:
    """One batch from runs of equal length, given shortest first: rows stacked longest first, ties in the
    given order (a stable sort on -length, as :func:`~pipeline.sampler.by_length_desc`)."""
    width = pieces[-1][3]
    rows = sum(hi - lo for _, lo, hi, _, _ in pieces)
    ids = np.zeros((rows, width), dtype=np.int64)
    at = 0
    for part, lo, hi, length, _ in pieces:
        if length:
            ids[at:at + hi - lo, :length] = part.values[part.offsets[lo]:part.offsets[hi]].reshape(hi - lo, length)
        at += hi - lo
    cat = lambda column: np.concatenate([getattr(p[0], column)[p[1]:p[2]] for p in pieces]).astype(np.int64)  # noqa: E731
    lengths = np.concatenate([np.full(hi - lo, length, dtype=np.int64) for _, lo, hi, length, _ in pieces])
    positions = np.concatenate([np.arange(pos, pos + hi - lo, dtype=np.int64) for _, lo, hi, _, pos in pieces])
    order = np.argsort(-lengths, kind="stable")
    return Batch(ids[order], lengths[order], cat("labels")[order], positions[order], cat("raw_rows")[order])
