"""Stage ``ingest``: load a labelled text dataset and write raw Parquet splits.

Output contract (``<out>/``)::

    train.parquet, validation.parquet[, test.parquet]
        columns: text (string), label (int64, 0-based class id)
        schema metadata b"textpipe.labels": JSON list of class names, id order
    stats.json   rows and label counts per split, rows dropped and why
    params.json  the resolved dataset config and ingest params
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import DataSource, IngestConfig
from .errors import PipelineError
from .fileio import ROWS_PER_BATCH, atomic_dir, write_json
from .schema import SPLITS, labels_metadata
from .sources import load_splits


# --------------------------------------------------------------------------- cleaning


def _label_names(cfg: DataSource, train_labels: pa.ChunkedArray) -> list[str]:
    if cfg.labels:
        return [str(x) for x in cfg.labels]
    values = pc.unique(train_labels.drop_null()).to_pylist()
    if pa.types.is_integer(train_labels.type) or pa.types.is_boolean(train_labels.type):
        return [str(i) for i in range(int(max(values)) + 1)] if values else []
    return sorted(str(v) for v in values)


def _label_ids(split: str, labels: pa.ChunkedArray, names: list[str]) -> np.ndarray:
    typ = labels.type
    if pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        ids = labels.cast(pa.int64()).to_numpy()
        bad = (ids < 0) | (ids >= len(names))
        if bad.any():
            unknown = sorted(set(ids[bad].tolist()))[:10]
            raise PipelineError(
                f"split '{split}' has label id(s) {unknown} outside 0..{len(names) - 1} "
                f"(known labels: {', '.join(names)}); fix dataset.labels or the data"
            )
        return ids
    as_str = labels.cast(pa.string())
    index = pc.index_in(as_str, value_set=pa.array(names, pa.string()))
    if index.null_count:
        unknown = sorted(set(pc.filter(as_str, pc.is_null(index)).to_pylist()))[:10]
        raise PipelineError(
            f"split '{split}' has unknown label(s) {unknown}; known labels: {', '.join(names)} (set dataset.labels)"
        )
    return index.cast(pa.int64()).to_numpy()


def check_columns(split: str, table: pa.Table, cfg: DataSource) -> None:
    for col in (cfg.text_column, cfg.label_column):
        if col not in table.column_names:
            key = "text_column" if col == cfg.text_column else "label_column"
            raise PipelineError(
                f"split '{split}' has no column '{col}'; columns are: {', '.join(table.column_names)} (set dataset.{key})"
            )


def clean_split(split: str, table: pa.Table, cfg: DataSource, names: list[str], empty_text: str) -> tuple[pa.Table, dict]:
    """Select and validate columns, count and drop unusable rows; return (text,label) table and counts.

    ``table`` may be one record batch of a split: the counts add up over batches.
    """
    check_columns(split, table, cfg)
    text = table.column(cfg.text_column)
    if text.null_count == len(text):  # an all-empty CSV column is inferred as null/float
        text = pa.chunked_array([pa.nulls(len(text), pa.string())])
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise PipelineError(f"column '{cfg.text_column}' of split '{split}' holds {text.type}, not text; set dataset.text_column")
    text = text.cast(pa.string())
    label = table.column(cfg.label_column)
    null_text = pc.is_null(text)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), False)
    null_label = pc.is_null(label)
    dropped = {
        "null_text": int(pc.sum(pc.and_(null_text, pc.invert(null_label))).as_py() or 0),
        "empty_text": int(pc.sum(pc.and_(blank, pc.invert(null_label))).as_py() or 0),
        "null_label": int(pc.sum(null_label).as_py() or 0),
    }
    keep = pc.invert(null_label)
    if empty_text == "drop":
        keep = pc.and_(keep, pc.and_(pc.invert(null_text), pc.invert(blank)))
    else:
        dropped["kept_empty_text"] = dropped.pop("null_text") + dropped.pop("empty_text")
        text = pc.fill_null(text, "")
    text = pc.filter(text, keep)
    label = pc.filter(label, keep)
    ids = _label_ids(split, label, names)
    out = pa.table({"text": text, "label": pa.array(ids, pa.int64())})
    return out, dropped


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (keep, carved): ``fraction`` of every class, chosen reproducibly."""
    rng = np.random.default_rng(seed)
    carved = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        n = int(round(len(rows) * fraction))
        carved.append(rng.permutation(rows)[:n])
    carved_idx = np.sort(np.concatenate(carved)) if carved else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[carved_idx] = False
    return np.flatnonzero(mask), carved_idx


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Positions of a reproducible random subset of at most ``max_rows`` of ``n`` rows, in order."""
    if not max_rows or n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_rows])


def _batches(table: pa.Table) -> Iterator[pa.Table]:
    for batch in table.to_batches(max_chunksize=ROWS_PER_BATCH):
        yield pa.Table.from_batches([batch])


def ingest(cfg: DataSource, out_dir: str | Path, params: IngestConfig = IngestConfig()) -> dict:
    """Load, validate and write the raw splits of ``cfg`` into ``out_dir``; return the stats.

    Streaming: the source tables (memory-mapped by Hugging Face ``datasets``) are read in record
    batches twice. The first pass cleans and counts and keeps only each kept row's label id
    (8 bytes a row), which decides the stratified carve and the ``max_rows`` sample; the second
    cleans again and routes each row to its output split's Parquet writer.
    """
    raw = load_splits(cfg)
    for split, table in raw.items():
        check_columns(split, table, cfg)
    names = _label_names(cfg, raw["train"].column(cfg.label_column))
    labels: dict[str, np.ndarray] = {}
    dropped: dict[str, dict] = {}
    for split, table in raw.items():
        parts, counts = [], Counter()
        for batch in _batches(table):
            clean, d = clean_split(split, batch, cfg, names, params.empty_text)
            parts.append(clean.column("label").to_numpy())
            counts.update(d)
        labels[split] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        dropped[split] = dict(counts) or clean_split(split, table.slice(0, 0), cfg, names, params.empty_text)[1]
    # Where each kept row goes: its own split, or (train) a carved split; -1 = left out by max_rows.
    dest = {split: np.full(len(labels[split]), SPLITS.index(split), np.int8) for split in raw}
    carved: dict[str, str] = {}
    available = np.arange(len(labels["train"]))
    for target, frac in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if target not in raw and frac > 0:
            keep, cut = stratified_split(labels["train"][available], frac, cfg.seed)
            dest["train"][available[cut]] = SPLITS.index(target)
            available = available[keep]
            carved[target] = f"{frac:.0%} of train, stratified, seed {cfg.seed}"
    outputs = [*raw, *(t for t in ("test", "validation") if t in carved)]
    out_labels = {}
    for out in outputs:
        source = "train" if out in carved else out
        rows = np.flatnonzero(dest[source] == SPLITS.index(out))
        left_out = np.setdiff1d(np.arange(len(rows)), sample_rows(len(rows), params.max_rows, cfg.seed))
        dest[source][rows[left_out]] = -1
        out_labels[out] = labels[source][dest[source] == SPLITS.index(out)]
        if len(out_labels[out]) == 0:
            raise PipelineError(f"split '{out}' is empty after dropping unusable rows ({dropped.get(out, {})}); "
                                "check the data and columns")
    stats = {
        "dataset": cfg.name,
        "labels": names,
        "rows": {s: len(out_labels[s]) for s in outputs},
        "label_counts": {s: {names[i]: int(n) for i, n in enumerate(np.bincount(out_labels[s], minlength=len(names)))}
                         for s in outputs},
        "dropped": dropped,
        "carved": carved,
    }
    schema = pa.schema([("text", pa.string()), ("label", pa.int64())], metadata=labels_metadata(names))
    with atomic_dir(out_dir) as tmp:
        writers = {s: pq.ParquetWriter(tmp / f"{s}.parquet", schema) for s in outputs}
        for split, table in raw.items():
            offset = 0
            for batch in _batches(table):
                clean, _ = clean_split(split, batch, cfg, names, params.empty_text)
                where = dest[split][offset:offset + clean.num_rows]
                offset += clean.num_rows
                for out in outputs:
                    mask = where == SPLITS.index(out)
                    if mask.any():
                        writers[out].write_table(clean.filter(pa.array(mask)).cast(schema))
        for writer in writers.values():
            writer.close()
        write_json(tmp / "params.json", {"dataset": asdict(cfg), "ingest": params.content_params()})
        write_json(tmp / "stats.json", stats)
    return stats
