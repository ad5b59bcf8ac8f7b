"""Stage ``ingest``: load a labelled text dataset and write raw Parquet splits.

Output contract (``<out>/``)::

    train.parquet, validation.parquet[, test.parquet]
        columns: text (string), label (int64, 0-based class id)[, id (string):
                 dataset.id_column, when set]
        schema metadata b"textpipe.labels": JSON list of class names, id order
    stats.json   rows and label counts per split, rows dropped and why, exact
                 duplicates per split (repeated rows; texts seen with conflicting
                 labels) and validation/test rows whose text is also in train
    checksums.json  size and sha256 of every file, written last (pipeline.integrity)
    params.json  the resolved dataset config and ingest params
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import DataSource, IngestConfig
from .errors import PipelineError
from .fileio import ParquetWriter, sweep_stale, temp_prefix, write_json
from .integrity import sealed_dir
from .schema import SPLITS, labels_metadata
from .sources import SplitRows, load_splits


# --------------------------------------------------------------------------- cleaning


_WHOLE = re.compile(r"[+-]?\d+")


def _whole_floats(split: str, labels: pa.ChunkedArray) -> pa.ChunkedArray:
    """Float labels that are whole numbers (CSV readers make ``0/1`` with a blank into floats) as int64."""
    values = labels.drop_null()
    if len(values) and not pc.all(pc.equal(pc.floor(values), values)).as_py():
        odd = sorted(set(pc.filter(values, pc.not_equal(pc.floor(values), values)).to_pylist()))[:5]
        raise PipelineError(f"split '{split}' has label(s) {odd} that are not whole numbers; labels must be "
                            "class ids (0, 1, ...) or class names")
    return labels.cast(pa.int64())


def label_values(split: str, labels: pa.ChunkedArray) -> pa.ChunkedArray:
    """The label column as int64 (ids, booleans, whole floats) or as strings."""
    typ = labels.type
    if pa.types.is_floating(typ):
        return _whole_floats(split, labels)
    if pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        return labels.cast(pa.int64())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return labels.cast(pa.string())
    raise PipelineError(f"split '{split}' has labels of type {typ}; labels must be class ids or class names")


def _label_names(cfg: DataSource, train: SplitRows) -> list[str]:
    """Class names in id order: ``dataset.labels``, else the distinct training labels, numbers in numeric
    order (``'2'`` before ``'10'``) and names in alphabetical order. Never a class that train lacks."""
    if cfg.labels:
        return [str(x) for x in cfg.labels]
    distinct = [pc.unique(label_values("train", batch.column(0)).drop_null())
                for batch in train.batches([cfg.label_column])]
    values = pc.unique(pa.chunked_array(distinct, distinct[0].type)).to_pylist() if distinct else []
    strings = [str(v) for v in values]
    numeric = [v for v in strings if _WHOLE.fullmatch(v)]
    if numeric and len(numeric) < len(strings):
        names = sorted(set(strings) - set(numeric))
        raise PipelineError(f"the train labels mix numbers ({', '.join(sorted(numeric, key=int)[:5])}) and names "
                            f"({', '.join(names[:5])}); use one kind, or list the classes in dataset.labels")
    if numeric:
        return sorted(strings, key=int)
    return sorted(strings)


def _label_ids(split: str, labels: pa.ChunkedArray, names: list[str], ids_given: bool) -> np.ndarray:
    """Label ids: integer labels are ids into ``dataset.labels`` when it is given (``ids_given``);
    otherwise every label is looked up by its text among the class names."""
    values = label_values(split, labels)
    if ids_given and pa.types.is_integer(values.type):
        ids = values.to_numpy()
        bad = (ids < 0) | (ids >= len(names))
        if bad.any():
            unknown = sorted(set(ids[bad].tolist()))[:10]
            raise PipelineError(
                f"split '{split}' has label id(s) {unknown} outside 0..{len(names) - 1} "
                f"(known labels: {', '.join(names)}); fix dataset.labels or the data"
            )
        return ids
    as_str = values.cast(pa.string())
    index = pc.index_in(as_str, value_set=pa.array(names, pa.string()))
    if index.null_count:
        unknown = sorted(set(pc.filter(as_str, pc.is_null(index)).to_pylist()))[:10]
        if ids_given or split == "train":
            raise PipelineError(f"split '{split}' has unknown label(s) {unknown}; known labels: {', '.join(names)} "
                                "(set dataset.labels to every class, in id order)")
        raise PipelineError(f"split '{split}' has label(s) {unknown} that train does not have (known labels: "
                            f"{', '.join(names)}); add training rows of them, or drop those rows")
    return index.cast(pa.int64()).to_numpy()


def check_classes(names: list[str], train_ids: np.ndarray) -> None:
    """Every class needs training rows, and a classifier needs two classes."""
    counts = np.bincount(train_ids, minlength=len(names))
    empty = [names[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise PipelineError(f"class(es) {', '.join(empty)} have no training rows; remove them from dataset.labels "
                            "or add training rows (a class the model never sees only lowers every score)")
    if len(names) < 2:
        raise PipelineError(f"the train split has one class only ({', '.join(names) or 'none'}); a classifier "
                            "needs rows of at least two classes")


def text_hashes(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An 8-byte fingerprint of each text (to count exact duplicates and overlap, 8 bytes a row)."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts.to_pylist()):
        out[i] = int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
    return out


def duplicate_stats(hashes: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Exact duplicates per split (rows repeating an earlier row's text; texts seen with different labels)
    and rows of validation/test whose text is also in train."""
    dupes = {}
    for split, h in hashes.items():
        distinct = len(np.unique(h))
        pairs = np.unique(np.stack([h, labels[split].astype(np.uint64)]), axis=1).shape[1]  # distinct (text, label)
        dupes[split] = {"repeated_rows": int(len(h) - distinct), "texts_with_conflicting_labels": int(pairs - distinct)}
    overlap = {f"{s}_in_train": int(np.isin(hashes[s], hashes["train"]).sum()) for s in hashes if s != "train"}
    return {"duplicates": dupes, "overlap": overlap}


def check_columns(split: str, table: pa.Table | SplitRows, cfg: DataSource) -> None:
    wanted = {cfg.text_column: "text_column", cfg.label_column: "label_column"}
    if cfg.id_column:
        wanted[cfg.id_column] = "id_column"
    for col, key in wanted.items():
        if col not in table.column_names:
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
    ids = _label_ids(split, label, names, bool(cfg.labels))
    out = pa.table({"text": text, "label": pa.array(ids, pa.int64())})
    if cfg.id_column:
        out = out.append_column("id", pc.filter(table.column(cfg.id_column), keep).cast(pa.string()))
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


def ingest(cfg: DataSource, out_dir: str | Path, params: IngestConfig = IngestConfig()) -> dict:
    """Load, validate and write the raw splits of ``cfg`` into ``out_dir``; return the stats.

    Streaming: each source split is read in record batches twice (see :mod:`pipeline.sources`).
    The first pass cleans and counts and keeps only each kept row's label id and text fingerprint
    (16 bytes a row), which decide the stratified carve, the ``max_rows`` sample and the duplicate
    counts; the second cleans again and routes each row to its output split's Parquet writer
    (row groups of ``ROWS_PER_BATCH`` rows, whatever the source's chunking). Local files other than Parquet are loaded through a cache folder of this run's
    own beside ``out_dir`` (removed at the end; a killed run's is removed by the next), so they are
    read by content.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cache_name = out_dir.with_name(out_dir.name + "-cache")
    sweep_stale(cache_name)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(cache_name), suffix=".tmp", dir=out_dir.parent) as cache:
        return _ingest(cfg, out_dir, params, load_splits(cfg, cache_dir=cache))


def _ingest(cfg: DataSource, out_dir: Path, params: IngestConfig, raw: dict[str, SplitRows]) -> dict:
    for split, rows in raw.items():
        check_columns(split, rows, cfg)
    columns = [c for c in (cfg.text_column, cfg.label_column, cfg.id_column) if c]
    names = _label_names(cfg, raw["train"])
    labels: dict[str, np.ndarray] = {}
    hashes: dict[str, np.ndarray] = {}
    dropped: dict[str, dict] = {}
    for split, rows in raw.items():
        parts, fingerprints, counts = [], [], Counter()
        for batch in rows.batches(columns):
            clean, d = clean_split(split, batch, cfg, names, params.empty_text)
            parts.append(clean.column("label").to_numpy())
            fingerprints.append(text_hashes(clean.column("text")))
            counts.update(d)
        labels[split] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        hashes[split] = np.concatenate(fingerprints) if fingerprints else np.zeros(0, np.uint64)
        dropped[split] = dict(counts) or clean_split(split, rows.empty(), cfg, names, params.empty_text)[1]
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
    out_labels, out_hashes = {}, {}
    for out in outputs:
        source = "train" if out in carved else out
        rows = np.flatnonzero(dest[source] == SPLITS.index(out))
        left_out = np.setdiff1d(np.arange(len(rows)), sample_rows(len(rows), params.max_rows, cfg.seed))
        dest[source][rows[left_out]] = -1
        out_labels[out] = labels[source][dest[source] == SPLITS.index(out)]
        out_hashes[out] = hashes[source][dest[source] == SPLITS.index(out)]
        if len(out_labels[out]) == 0:
            raise PipelineError(f"split '{out}' is empty after dropping unusable rows ({dropped.get(out, {})}); "
                                "check the data and columns")
    check_classes(names, out_labels["train"])
    stats = {
        "dataset": cfg.name,
        "labels": names,
        "rows": {s: len(out_labels[s]) for s in outputs},
        "label_counts": {s: {names[i]: int(n) for i, n in enumerate(np.bincount(out_labels[s], minlength=len(names)))}
                         for s in outputs},
        "dropped": dropped,
        "carved": carved,
        **duplicate_stats(out_hashes, out_labels),
    }
    fields = [("text", pa.string()), ("label", pa.int64())] + ([("id", pa.string())] if cfg.id_column else [])
    schema = pa.schema(fields, metadata=labels_metadata(names))
    with sealed_dir(out_dir) as tmp:
        writers = {s: ParquetWriter(tmp / f"{s}.parquet", schema) for s in outputs}
        for split, rows in raw.items():
            offset = 0
            for batch in rows.batches(columns):
                clean, _ = clean_split(split, batch, cfg, names, params.empty_text)
                where = dest[split][offset:offset + clean.num_rows]
                offset += clean.num_rows
                for out in outputs:
                    mask = where == SPLITS.index(out)
                    if mask.any():
                        writers[out].write(clean.filter(pa.array(mask)).cast(schema))
        for writer in writers.values():
            writer.close()
        write_json(tmp / "params.json", {"dataset": cfg.record(), "ingest": params.content_params()})
        write_json(tmp / "stats.json", stats)
    return stats
