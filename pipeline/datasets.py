"""Stage ``ingest``: load a labelled text dataset and write raw Parquet splits.

Every source goes through Hugging Face ``datasets``: the shipped demo corpus and
local folders through its packaged builders (parquet, csv, json), hub ids
through ``load_dataset``.

Output contract (``<out>/``)::

    train.parquet, validation.parquet[, test.parquet]
        columns: text (string), label (int64, 0-based class id)
        schema metadata b"textpipe.labels": JSON list of class names, id order
    stats.json   rows and label counts per split, rows dropped and why
    params.json  the resolved dataset config and ingest params
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import PipelineError
from .fileio import atomic_dir, write_json
from .layout import RESERVED_NAMES

SPLITS = ("train", "validation", "test")
LABELS_KEY = b"textpipe.labels"
DEMO_DIR = Path(__file__).resolve().parent / "demo_data"

# Hub ids and columns of the datasets we know. Local copies are used through
# ``source: files`` with ``path`` pointing at the folder (see README).
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "source": "demo", "path": str(DEMO_DIR), "text_column": "text", "label_column": "label",
        "labels": ["neg", "pos"],
    },
    "imdb": {
        "source": "hub", "path": "stanfordnlp/imdb", "text_column": "text", "label_column": "label",
        "labels": ["neg", "pos"], "splits": {"train": "train", "test": "test"},
    },
    "sst2": {
        # The GLUE test split is unlabelled (label -1), so it is not used.
        "source": "hub", "path": "stanfordnlp/sst2", "text_column": "sentence", "label_column": "label",
        "labels": ["negative", "positive"], "splits": {"train": "train", "validation": "validation"},
    },
    "ag_news": {
        "source": "hub", "path": "fancyzhx/ag_news", "text_column": "text", "label_column": "label",
        "labels": ["World", "Sports", "Business", "Sci/Tech"], "splits": {"train": "train", "test": "test"},
    },
}

DATASET_DEFAULTS: dict[str, Any] = {
    "name": "demo",
    "source": None,
    "path": None,
    "text_column": None,
    "label_column": None,
    "labels": None,
    "splits": None,
    "validation_fraction": 0.1,
    "test_fraction": 0.0,
    "seed": 13,
}
INGEST_DEFAULTS: dict[str, Any] = {"empty_text": "drop", "max_rows": 0}

FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}


@dataclass
class DatasetConfig:
    """A dataset block with preset values filled in for the keys left null."""

    name: str
    source: str
    path: str
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = None
    splits: dict[str, str] = field(default_factory=lambda: {s: s for s in SPLITS})
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 13


def resolve_dataset(block: dict[str, Any]) -> DatasetConfig:
    """Explicit keys win over the preset named by ``name``, which wins over generic defaults."""
    name = block.get("name")
    if not name or not isinstance(name, str) or "/" in name:
        raise PipelineError("dataset.name must be a plain name (it is used in artifact paths), e.g. 'imdb'")
    if name in RESERVED_NAMES:
        raise PipelineError(f"dataset.name {name!r} is taken by artifacts/{name}/; choose another name")
    preset = PRESETS.get(name, {})
    merged = {k: (v if v is not None else preset.get(k)) for k, v in block.items()}
    if not merged.get("source"):
        raise PipelineError(
            f"dataset '{name}' is not a preset ({', '.join(PRESETS)}); set dataset.source (files|hub) and dataset.path"
        )
    if merged["source"] not in ("demo", "files", "hub"):
        raise PipelineError(f"dataset.source must be demo, files or hub, got {merged['source']!r}")
    if merged["source"] == "demo":
        merged["path"] = str(DEMO_DIR)
    if not merged.get("path"):
        raise PipelineError(f"dataset.path is required for source '{merged['source']}' (a folder or a hub id)")
    splits = merged.get("splits") or {s: s for s in SPLITS}
    bad = sorted(set(splits) - set(SPLITS))
    if bad or "train" not in splits:
        raise PipelineError(f"dataset.splits maps {', '.join(SPLITS)} to file stems or hub splits and needs 'train'; got {splits}")
    for key in ("validation_fraction", "test_fraction"):
        frac = merged.get(key) or 0.0
        if not 0.0 <= float(frac) < 1.0:
            raise PipelineError(f"dataset.{key} must be in [0, 1), got {frac}")
    return DatasetConfig(
        name=name,
        source=merged["source"],
        path=str(merged["path"]),
        text_column=merged.get("text_column") or "text",
        label_column=merged.get("label_column") or "label",
        labels=list(merged["labels"]) if merged.get("labels") else None,
        splits={k: v for k, v in splits.items() if v},
        validation_fraction=float(merged.get("validation_fraction") or 0.0),
        test_fraction=float(merged.get("test_fraction") or 0.0),
        seed=int(merged.get("seed") or 0),
    )


# --------------------------------------------------------------------------- loading


def check_utf8(path: Path, chunk: int = 1 << 20) -> None:
    """Raise a PipelineError naming the line and byte offset of the first invalid UTF-8 byte."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += block[: exc.start].count(b"\n")
                raise PipelineError(
                    f"{path} is not valid UTF-8 (line {line}, byte offset {bad}); re-save it as UTF-8"
                ) from None
            if not block:
                return
            line += block.count(b"\n")
            offset += len(block)


def _find_file(folder: Path, stem: str) -> Path | None:
    found = [folder / f"{stem}{ext}" for ext in FILE_BUILDERS if (folder / f"{stem}{ext}").exists()]
    if len(found) > 1:
        raise PipelineError(f"{folder} has several files for split '{stem}': {', '.join(p.name for p in found)}; keep one")
    return found[0] if found else None


def load_file(path: Path, builders: dict[str, str] = FILE_BUILDERS) -> pa.Table:
    """One local file as an Arrow table, read by the Hugging Face builder for its suffix."""
    import datasets

    ext = path.suffix.lower()
    builder = builders.get(ext)
    if builder is None:
        raise PipelineError(f"{path}: unreadable file type '{ext}'; use one of {', '.join(builders)}")
    if builder != "parquet":
        check_utf8(path)
    kwargs: dict[str, Any] = {"delimiter": "\t"} if ext == ".tsv" else {}
    try:
        ds = datasets.load_dataset(builder, data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as exc:  # datasets wraps parser errors in many types
        raise PipelineError(f"could not read {path} as {ext[1:]}: {_first_line(exc)}") from None
    return ds.with_format("arrow")[:]


def _first_line(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load_splits(cfg: DatasetConfig) -> dict[str, pa.Table]:
    """Return the splits the source has, as Arrow tables with their original columns."""
    if cfg.source == "hub":
        return _load_hub(cfg)
    folder = Path(cfg.path)
    if not folder.is_dir():
        raise PipelineError(f"dataset.path {folder} is not a folder; it must hold train.* (and optionally validation.*, test.*)")
    tables = {}
    for split, stem in cfg.splits.items():
        path = _find_file(folder, stem)
        if path is None:
            if split == "train":
                have = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
                raise PipelineError(f"{folder} has no {stem}.{{parquet,csv,tsv,jsonl}} for the train split (it has: {have})")
            continue
        tables[split] = load_file(path)
    return tables


def _load_hub(cfg: DatasetConfig) -> dict[str, pa.Table]:
    import datasets

    tables = {}
    for split, hub_split in cfg.splits.items():
        try:
            ds = datasets.load_dataset(cfg.path, split=hub_split)
        except Exception as exc:
            offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = " (offline mode is on: use a local copy with dataset.source=files)" if offline else ""
            if split != "train" and "split" in str(exc).lower():
                continue
            raise PipelineError(f"could not load hub dataset '{cfg.path}' split '{hub_split}'{hint}: {_first_line(exc)}") from None
        tables[split] = ds.with_format("arrow")[:]
    return tables


# --------------------------------------------------------------------------- cleaning


def _label_names(cfg: DatasetConfig, train_labels: pa.ChunkedArray) -> list[str]:
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


def clean_split(split: str, table: pa.Table, cfg: DatasetConfig, names: list[str], empty_text: str) -> tuple[pa.Table, dict]:
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


def ingest(cfg: DatasetConfig, out_dir: str | Path, empty_text: str = "drop", max_rows: int = 0) -> dict:
    """Load, validate and write the raw splits of ``cfg`` into ``out_dir``; return the stats."""
    if empty_text not in ("drop", "keep"):
        raise PipelineError(f"ingest.empty_text must be 'drop' or 'keep', got {empty_text!r}")
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
    meta = {LABELS_KEY: json.dumps(names).encode()}
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
        write_json(tmp / "params.json", {"dataset": asdict(cfg), "ingest": {"empty_text": empty_text, "max_rows": max_rows}})
        write_json(tmp / "stats.json", stats)
    return stats


def read_labels(schema: pa.Schema) -> list[str]:
    """Class names carried in an artifact's schema metadata."""
    meta = schema.metadata or {}
    if LABELS_KEY not in meta:
        raise PipelineError("artifact has no class names in its schema metadata; rerun the pipeline from ingest")
    return json.loads(meta[LABELS_KEY])
