"""Stage ``ingest``: load a labelled text dataset and write raw Parquet splits.

Output contract (``<out>/``)::

    train.parquet, validation.parquet[, test.parquet]
        columns: text (string), label (int64, 0-based class id)
        schema metadata b"textpipe.labels": JSON list of class names, id order
    stats.json   rows and label counts per split, rows dropped and why
    params.json  the resolved dataset config and ingest params
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import DataSource, IngestConfig
from .errors import PipelineError
from .fileio import atomic_dir, write_json
from .schema import labels_metadata
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


def clean_split(split: str, table: pa.Table, cfg: DataSource, names: list[str], empty_text: str) -> tuple[pa.Table, dict]:
    """Select and validate columns, count and drop unusable rows; return (text,label) table and counts."""
    for col in (cfg.text_column, cfg.label_column):
        if col not in table.column_names:
            key = "text_column" if col == cfg.text_column else "label_column"
            raise PipelineError(
                f"split '{split}' has no column '{col}'; columns are: {', '.join(table.column_names)} (set dataset.{key})"
            )
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


def sample_rows(table: pa.Table, max_rows: int, seed: int) -> pa.Table:
    """A reproducible random subset of at most ``max_rows`` rows, original order kept."""
    if not max_rows or table.num_rows <= max_rows:
        return table
    idx = np.sort(np.random.default_rng(seed).permutation(table.num_rows)[:max_rows])
    return table.take(pa.array(idx))


def ingest(cfg: DataSource, out_dir: str | Path, params: IngestConfig = IngestConfig()) -> dict:
    """Load, validate and write the raw splits of ``cfg`` into ``out_dir``; return the stats."""
    empty_text, max_rows = params.empty_text, params.max_rows
    raw = load_splits(cfg)
    names = _label_names(cfg, raw["train"].column(cfg.label_column) if cfg.label_column in raw["train"].column_names else pa.chunked_array([[]], pa.int64()))
    tables: dict[str, pa.Table] = {}
    dropped: dict[str, dict] = {}
    for split, table in raw.items():
        tables[split], dropped[split] = clean_split(split, table, cfg, names, empty_text)
    carved: dict[str, str] = {}
    for target, frac in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if target not in tables and frac > 0:
            keep, cut = stratified_split(tables["train"].column("label").to_numpy(), frac, cfg.seed)
            tables[target] = tables["train"].take(pa.array(cut))
            tables["train"] = tables["train"].take(pa.array(keep))
            carved[target] = f"{frac:.0%} of train, stratified, seed {cfg.seed}"
    for split in list(tables):
        tables[split] = sample_rows(tables[split], max_rows, cfg.seed)
        if tables[split].num_rows == 0:
            raise PipelineError(f"split '{split}' is empty after dropping unusable rows ({dropped.get(split, {})}); check the data and columns")
    meta = labels_metadata(names)
    stats = {
        "dataset": cfg.name,
        "labels": names,
        "rows": {s: t.num_rows for s, t in tables.items()},
        "label_counts": {
            s: {names[i]: int(n) for i, n in enumerate(np.bincount(t.column("label").to_numpy(), minlength=len(names)))}
            for s, t in tables.items()
        },
        "dropped": dropped,
        "carved": carved,
    }
    with atomic_dir(out_dir) as tmp:
        for split, table in tables.items():
            pq.write_table(table.replace_schema_metadata(meta), tmp / f"{split}.parquet")
        write_json(tmp / "params.json", {"dataset": asdict(cfg), "ingest": params.content_params()})
        write_json(tmp / "stats.json", stats)
    return stats
