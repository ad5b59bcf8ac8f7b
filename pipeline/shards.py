"""Stage ``shard``: length-sorted, uncompressed Arrow IPC shards and their manifest.

Output contract (``<out>/``)::

    <split>-<nnnnn>.arrow  Arrow IPC file (Feather v2), uncompressed so it can
                           be memory-mapped zero-copy; rows sorted by length
                           (ties in input order); columns:
                             ids (list<int32>), label (int64), length (int32),
                             row (int64, index in the raw split), bucket (int16)
    manifest.json          written last. format, schema, class names, bucket
                           bounds, vocabulary sha256 and size, per split the
                           shard files with rows, tokens, min/max length,
                           bytes and sha256; the params that produced them
                           (tokenize, vocab, bucket, shard).

:class:`ShardReader` is the only supported way to read them: it checks every
checksum and the vocabulary hash before handing out memory-mapped columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from .config import ShardConfig
from .errors import PipelineError
from .fileio import atomic_dir, read_arrow, read_json, sha256_file, write_arrow, write_json
from .schema import SPLITS, read_labels

FORMAT = "textpipe-shards/1"


class ShardWriter:
    """Writes one split as length-sorted shards of about ``target_bytes`` each."""

    def __init__(self, out_dir: str | Path, target_bytes: int):
        self.out_dir = Path(out_dir)
        self.target_bytes = target_bytes

    def write_split(self, split: str, table: pa.Table) -> dict:
        lengths = table.column("length").to_numpy()
        order = np.argsort(lengths, kind="stable")
        table = table.take(pa.array(order))
        lengths = lengths[order]
        # bytes per row: ids + list offset + label + length + row + bucket
        row_bytes = lengths.astype(np.int64) * 4 + 4 + 8 + 4 + 8 + 2
        cuts = _cut_points(np.cumsum(row_bytes), self.target_bytes)
        shards = []
        for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
            part = table.slice(lo, hi - lo)
            name = f"{split}-{i:05d}.arrow"
            path = self.out_dir / name
            write_arrow(part, path)
            shards.append({
                "file": name,
                "rows": int(hi - lo),
                "tokens": int(lengths[lo:hi].sum()),
                "min_length": int(lengths[lo]),
                "max_length": int(lengths[hi - 1]),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            })
        return {"rows": table.num_rows, "tokens": int(lengths.sum()), "shards": shards}


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
    tables = {s: read_arrow(ids_dir / f"{s}.arrow") for s in SPLITS if (ids_dir / f"{s}.arrow").exists()}
    if "train" not in tables:
        raise PipelineError(f"{ids_dir}/train.arrow not found; run `textpipe bucket` first")
    bounds = read_json(ids_dir / "buckets.json")["boundaries"]
    vocab_lines = sum(1 for _ in open(vocab_path, encoding="utf-8"))
    with atomic_dir(out_dir) as tmp:
        writer = ShardWriter(tmp, max(1, int(cfg.shard_size_mb * 2**20)))
        splits = {s: writer.write_split(s, t) for s, t in tables.items()}
        manifest = {
            "format": FORMAT,
            "schema": {f.name: str(f.type) for f in tables["train"].schema},
            "labels": read_labels(tables["train"].schema),
            "boundaries": bounds,
            "vocab": {"sha256": sha256_file(vocab_path), "size": vocab_lines},
            "splits": splits,
            "params": {**read_json(ids_dir / "params.json"), "shard": cfg.content_params()},
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


@dataclass
class SplitData:
    """One split's columns as numpy views over memory-mapped shards.

    ``values``/``offsets`` are per shard (no copy); ``lengths``, ``labels`` and
    ``buckets`` are small and concatenated. Row ``i`` of the split lives in
    shard ``shard_of[i]`` at ``row_in_shard[i]``.
    """

    values: list[np.ndarray]
    offsets: list[np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray
    buckets: np.ndarray
    raw_rows: np.ndarray
    shard_of: np.ndarray
    row_in_shard: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, i: int) -> np.ndarray:
        s, r = self.shard_of[i], self.row_in_shard[i]
        off = self.offsets[s]
        return self.values[s][off[r]:off[r + 1]]

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.row(i) for i in indices]


class ShardReader:
    """Opens shards through their manifest, memory-mapped, after checking checksums."""

    def __init__(self, shard_dir: str | Path, vocab_path: str | Path | None = None, verify: bool = True):
        self.dir = Path(shard_dir)
        manifest_path = self.dir / "manifest.json"
        if not manifest_path.exists():
            raise PipelineError(f"{manifest_path} not found; run `textpipe shard` (or `dvc repro shard`) first")
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
        if verify:
            for split, info in self.manifest["splits"].items():
                for shard in info["shards"]:
                    path = self.dir / shard["file"]
                    if not path.exists():
                        raise PipelineError(f"shard {path} listed in the manifest is missing; rerun `textpipe shard`")
                    if sha256_file(path) != shard["sha256"]:
                        raise PipelineError(f"shard {path} does not match its checksum in the manifest (corrupt or edited); rerun `textpipe shard`")

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
        values, offsets, lengths, labels, buckets, raw_rows, shard_of, row_in = [], [], [], [], [], [], [], []
        for k, shard in enumerate(self._shards(split)):
            t = self._open(shard["file"])
            ids = t.column("ids").chunks[0] if t.column("ids").num_chunks == 1 else t.column("ids").combine_chunks()
            values.append(ids.values.to_numpy())
            offsets.append(ids.offsets.to_numpy())
            lengths.append(t.column("length").to_numpy())
            labels.append(t.column("label").to_numpy())
            buckets.append(t.column("bucket").to_numpy())
            raw_rows.append(t.column("row").to_numpy())
            shard_of.append(np.full(t.num_rows, k, dtype=np.int32))
            row_in.append(np.arange(t.num_rows, dtype=np.int64))
        cat = lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt)  # noqa: E731
        return SplitData(values, offsets, cat(lengths, np.int64), cat(labels, np.int64), cat(buckets, np.int64),
                         cat(raw_rows, np.int64), cat(shard_of, np.int32), cat(row_in, np.int64))

    def _shards(self, split: str) -> list[dict]:
        if split not in self.manifest["splits"]:
            raise PipelineError(f"split '{split}' is not in {self.dir}/manifest.json (it has: {', '.join(self.splits)})")
        return self.manifest["splits"][split]["shards"]

    def _open(self, name: str) -> pa.Table:
        source = pa.memory_map(str(self.dir / name), "r")
        return pa.ipc.open_file(source).read_all()
