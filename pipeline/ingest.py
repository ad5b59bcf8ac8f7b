"""Stage ``ingest``: load a labelled text dataset and write raw Parquet splits.

Output contract (``<out>/``)::

    train.parquet, validation.parquet[, test.parquet]
        columns: text (string), label (int64, 0-based class id)[, id (string):
                 dataset.id_column, when set]
        schema metadata b"textpipe.labels": JSON list of class names, id order
    stats.json   rows and label counts per split, rows dropped and why (a label
                 that reads as missing counts as null_label), labels whose
                 surrounding whitespace was stripped, exact duplicates per split
                 (repeated rows; texts seen with conflicting labels) and
                 validation/test rows whose text is also in train
    checksums.json  size and sha256 of every file, written last (pipeline.core.integrity)
    params.json  the resolved dataset config and ingest params
"""
from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .carve import RowRoutes
from .core.config import DataSource, IngestConfig
from .duplicates import DuplicateCounter
from .core.errors import PipelineError
from .core.fileio import ParquetWriter, sweep_stale, temp_prefix, write_json
from .core.integrity import sealed_dir
from .core.schema import SPLITS, labels_metadata
from .progress import log
from .sources import SplitRows, load_splits, separator_hint


# --------------------------------------------------------------------------- cleaning


_WHOLE = re.compile(r"[+-]?\d+")
# Text labels that mean "no label", compared case-folded after stripping; dataset.labels naming one keeps it.
MISSING_LABELS = ("", "n/a", "na", "nan", "none", "null")
RARE_ROWS, RARE_RATIO = 5, 100  # a train class this small beside one this many times larger: a stray label?


def tidy_labels(labels: pa.ChunkedArray, named: list[str] | None) -> tuple[pa.ChunkedArray, int]:
    """Text labels as their writer meant them: surrounding whitespace stripped (``text, label`` with a
    space after the comma is how many people write CSV), and a value that reads as missing
    (MISSING_LABELS, any case) null, unless ``named`` (dataset.labels) lists it. Returns the labels
    and how many were stripped; other types pass unchanged."""
    if not (pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type)):
        return labels, 0
    labels = labels.cast(pa.string())
    stripped = pc.utf8_trim_whitespace(labels)
    changed = int(pc.sum(pc.not_equal(stripped, labels)).as_py() or 0)
    missing = pc.is_in(pc.utf8_lower(stripped), value_set=pa.array(MISSING_LABELS, pa.string()))
    if named:
        missing = pc.and_(missing, pc.invert(pc.is_in(stripped, value_set=pa.array(named, pa.string()))))
    return pc.if_else(missing, pa.scalar(None, pa.string()), stripped), changed


def check_label_spellings(names: list[str]) -> None:
    """Class names found in the data that differ only in case are one class spelt two ways, or two
    classes the user must name: refuse them until ``dataset.labels`` says which."""
    spellings: dict[str, list[str]] = {}
    for name in sorted(names):
        spellings.setdefault(name.casefold(), []).append(name)
    clashes = [" / ".join(repr(n) for n in group) for group in spellings.values() if len(group) > 1]
    if clashes:
        raise PipelineError(f"the train labels {'; '.join(clashes[:5])} differ only in case; fix the data if each "
                            "group is one class, or list every class in dataset.labels if they are different classes")


def warn_rare_classes(names: list[str], train_counts: np.ndarray) -> str | None:
    """A warning line for train classes of at most RARE_ROWS rows beside one RARE_RATIO times larger
    (a label typed once by mistake?), or None."""
    largest = int(train_counts.max()) if len(train_counts) else 0
    rare = [f"{names[i]!r} ({n} rows)" for i, n in enumerate(train_counts.tolist())
            if n <= RARE_ROWS and largest >= RARE_RATIO * max(n, 1)]
    if not rare:
        return None
    return (f"warning: class(es) {', '.join(rare[:5])} next to {largest:,} rows of the largest: a mistyped label? "
            "Fix those rows, or list the classes in dataset.labels to keep them without this warning")


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
    distinct = [pc.unique(label_values("train", tidy_labels(batch.column(0), None)[0]).drop_null())
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
    check_label_spellings(strings)
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


def check_classes(names: list[str], train_counts: np.ndarray) -> None:
    """Every class needs training rows (``train_counts``: rows per class id), and a classifier needs two classes."""
    empty = [names[i] for i in np.flatnonzero(train_counts == 0)]
    if empty:
        raise PipelineError(f"class(es) {', '.join(empty)} have no training rows; remove them from dataset.labels "
                            "or add training rows (a class the model never sees only lowers every score)")
    if len(names) < 2:
        raise PipelineError(f"the train split has one class only ({', '.join(names) or 'none'}); a classifier "
                            "needs rows of at least two classes")


def check_columns(split: str, table: pa.Table | SplitRows, cfg: DataSource) -> None:
    wanted = {cfg.text_column: "text_column", cfg.label_column: "label_column"}
    if cfg.id_column:
        wanted[cfg.id_column] = "id_column"
    for col, key in wanted.items():
        if col not in table.column_names:
            if hint := separator_hint(table.column_names, col):
                raise PipelineError(f"split '{split}' has one column, {table.column_names[0]!r}: {hint}")
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
    label, stripped = tidy_labels(table.column(cfg.label_column), cfg.labels)
    null_text = pc.is_null(text)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), False)
    null_label = pc.is_null(label)
    dropped = {
        "null_text": int(pc.sum(pc.and_(null_text, pc.invert(null_label))).as_py() or 0),
        "empty_text": int(pc.sum(pc.and_(blank, pc.invert(null_label))).as_py() or 0),
        "null_label": int(pc.sum(null_label).as_py() or 0),
        "labels_stripped": stripped,  # not a drop: _ingest moves it to stats["labels_stripped"]
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


def ingest(cfg: DataSource, out_dir: str | Path, params: IngestConfig = IngestConfig()) -> dict:
    """Load, validate and write the raw splits of ``cfg`` into ``out_dir``; return the stats.

    Streaming: each source split is read in record batches twice (see :mod:`pipeline.sources`).
    The first pass cleans and counts rows per class, which fixes the carved splits' sizes
    (:mod:`pipeline.carve`); the second cleans again, routes each row to its output split's Parquet
    writer (row groups of ``ROWS_PER_BATCH`` rows, whatever the source's chunking) and counts
    duplicates (:mod:`pipeline.duplicates`). Nothing is held per row, so memory does not grow with
    the dataset. Local files other than Parquet are loaded through a cache folder of this run's
    own beside ``out_dir`` (removed at the end; a killed run's is removed by the next), so they are
    read by content.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cache_name = out_dir.with_name(out_dir.name + "-cache")
    sweep_stale(cache_name)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(cache_name), suffix=".tmp", dir=out_dir.parent) as cache:
        return _ingest(cfg, out_dir, params, load_splits(cfg, cache_dir=cache), Path(cache))


def _ingest(cfg: DataSource, out_dir: Path, params: IngestConfig, raw: dict[str, SplitRows], scratch: Path) -> dict:
    for split, rows in raw.items():
        check_columns(split, rows, cfg)
    columns = [c for c in (cfg.text_column, cfg.label_column, cfg.id_column) if c]
    names = _label_names(cfg, raw["train"])
    class_rows: dict[str, np.ndarray] = {}
    dropped: dict[str, dict] = {}
    stripped: dict[str, int] = {}
    for split, rows in raw.items():  # first pass: count
        counts, per_class = Counter(), np.zeros(len(names), np.int64)
        for batch in rows.batches(columns):
            clean, d = clean_split(split, batch, cfg, names, params.empty_text)
            per_class += np.bincount(clean.column("label").to_numpy(), minlength=len(names))
            counts.update(d)
        class_rows[split] = per_class
        dropped[split] = dict(counts) or clean_split(split, rows.empty(), cfg, names, params.empty_text)[1]
        stripped[split] = dropped[split].pop("labels_stripped", 0)
    routes = RowRoutes(class_rows, {"test": cfg.test_fraction, "validation": cfg.validation_fraction},
                       params.max_rows, cfg.seed)
    for split, per_class in class_rows.items():
        if per_class.sum() == 0:
            raise PipelineError(f"split '{split}' is empty after dropping unusable rows ({dropped[split]}); "
                                "check the data and columns")
    check_classes(names, class_rows["train"])  # a carve leaves every class a training row (carve_counts)
    if not cfg.labels and (warning := warn_rare_classes(names, class_rows["train"])):
        log(warning)
    for out in routes.carved:
        if routes.class_rows[out].sum() == 0:
            left = ", ".join(f"{name}: {n}" for name, n in zip(names, routes.class_rows["train"]))
            raise PipelineError(f"cannot carve a {out} split from train: no class has a row to spare, as training "
                                f"needs one of each ({left}); add rows, or give a {out} file")
    fields = [("text", pa.string()), ("label", pa.int64())] + ([("id", pa.string())] if cfg.id_column else [])
    schema = pa.schema(fields, metadata=labels_metadata(names))
    label_counts = {out: np.zeros(len(names), np.int64) for out in routes.outputs}
    duplicates = DuplicateCounter(routes.outputs, scratch, sum(int(n.sum()) for n in class_rows.values()))
    with sealed_dir(out_dir) as tmp:
        writers = {s: ParquetWriter(tmp / f"{s}.parquet", schema) for s in routes.outputs}
        for split, rows in raw.items():  # second pass: route and write
            for batch in rows.batches(columns):
                clean, _ = clean_split(split, batch, cfg, names, params.empty_text)
                labels = clean.column("label").to_numpy()
                dest = routes.route(split, labels)
                for out in routes.outputs:
                    mask = dest == SPLITS.index(out)
                    if mask.any():
                        rows_out = clean.filter(pa.array(mask))
                        writers[out].write(rows_out.cast(schema))
                        label_counts[out] += np.bincount(labels[mask], minlength=len(names))
                        duplicates.add(out, rows_out.column("text"), labels[mask])
        for writer in writers.values():
            writer.close()
        check_classes(names, label_counts["train"])  # again after max_rows
        stats = {
            "dataset": cfg.name,
            "labels": names,
            "rows": {s: int(label_counts[s].sum()) for s in routes.outputs},
            "label_counts": {s: {names[i]: int(n) for i, n in enumerate(label_counts[s])} for s in routes.outputs},
            "dropped": dropped,
            "labels_stripped": stripped,
            "carved": {t: f"{f:.0%} of train, stratified, seed {cfg.seed}" for t, f in routes.carved.items()},
            **duplicates.stats(),
        }
        write_json(tmp / "params.json", {"dataset": cfg.record(), "ingest": params.content_params()})
        write_json(tmp / "stats.json", stats)
    return stats
