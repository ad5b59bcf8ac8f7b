"""Reading a dataset's splits from where they live: the shipped demo, local files, or the hub.

Each split comes back as :class:`SplitRows`: its columns, and passes over its rows in record
batches, never the split whole, so a split larger than memory reads like a small one.

- Local Parquet is read with pyarrow, a few thousand rows at a time. Hugging Face's Parquet
  builder reads a whole row group at a time (and then writes an Arrow copy of the file), and a
  row group is whatever the file's writer made it: pyarrow and pandas write up to a million rows
  in one. Dictionary-encoded columns come back decoded, as ``datasets`` gives them.
- Local CSV and TSV are read exactly, by rule, never by guessing: pyarrow's streaming CSV reader with
  every column typed as a string (an id ``007`` stays ``007``, a text ``0001`` stays a text, a column
  whose first 10,000 values look numeric is still text). Then one rule types a column: the label
  column is integer class ids when every label in the file is a canonical integer (``0``, ``7``,
  ``-3``: no sign ``+``, no leading zero, within int64), else names (:func:`load_splits`). Python's
  own csv parser re-reads the file and must agree on every text (:func:`verify_delimited`).
- Local JSONL and ``.txt`` go through Hugging Face ``datasets``' packaged builders, which keep
  JSON's declared types and write an Arrow copy in batches; that copy is then read a batch at a
  time into memory rather than memory-mapped: pages of a mapped file stay resident in the process
  once read, so a pass over a split would look like holding it whole.
- Hub ids go through ``load_dataset`` and its cache, read the same way when the split is exactly
  its cache files (memory-mapped otherwise: a split such as ``train[:10%]``).

Local files are read by content, never from a stale cache: Hugging Face keys
its cache of a local file by path and modification time, so a file edited
with its mtime kept (``cp -p``, ``rsync -t``, a restored backup) would be
served from the old copy. Local files read through it (JSONL, ``.txt``) are therefore loaded
into a cache folder of the caller's own (``cache_dir``), removed when its stage
ends, which also keeps no copy of the user's data under their home folder.
"""
from __future__ import annotations

import codecs
import csv
import os
import socket
import stat
import sys
from urllib.parse import urlparse
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .core.config import DataSource
from .core.errors import PipelineError
from .core.fileio import ROWS_PER_BATCH, iter_parquet

FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}
# How delimited files are parsed (csv_options, and Python's csv module where it re-reads them). CSV:
# RFC 4180 (quoted fields, doubled quotes, embedded newlines). TSV: tab-separated, no quote
# processing, so a '"' in a text is just a character. For both, only an empty field is missing: a
# text such as "NA", "null" or "nan" is a text.
DIALECTS: dict[str, dict[str, Any]] = {".csv": {}, ".tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE}}


class SplitRows:
    """One split's rows where they live: its schema, and passes over its rows (any number of them) in
    tables of at most ``ROWS_PER_BATCH`` rows, with only the columns asked for."""

    def __init__(self, schema: pa.Schema, num_rows: int, read: Callable[[list[str] | None], Iterator[pa.RecordBatch]]):
        self.schema = schema
        self.num_rows = num_rows
        self._read = read

    def as_ids(self, column: str) -> "SplitRows":
        """The same rows with string ``column`` read as int64 (its values stripped of surrounding
        whitespace, every one a canonical integer: :func:`canonical_integers`)."""
        read = self._read

        def cast(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
            for batch in read(columns):
                if column in batch.schema.names:
                    i = batch.schema.get_field_index(column)
                    batch = batch.set_column(i, pa.field(column, pa.int64()),
                                             pc.utf8_trim_whitespace(batch.column(i)).cast(pa.int64()))
                yield batch

        i = self.schema.get_field_index(column)
        return SplitRows(self.schema.set(i, pa.field(column, pa.int64())), self.num_rows, cast)

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        for batch in self._read(columns):
            for start in range(0, batch.num_rows, ROWS_PER_BATCH):
                yield pa.Table.from_batches([batch.slice(start, ROWS_PER_BATCH)])

    def empty(self) -> pa.Table:
        return self.schema.empty_table()


def _decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded columns (a pandas ``category``) as plain values, as ``datasets`` gives them."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    arrays = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def parquet_rows(path: Path) -> SplitRows:
    """A local Parquet file, read ``ROWS_PER_BATCH`` rows at a time (see the module doc)."""

    def unreadable(exc: BaseException) -> PipelineError:
        return PipelineError(f"could not read {path} as parquet: {first_line(exc)}")

    try:
        meta = pq.read_metadata(str(path))
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(exc) from None
    if meta.num_rows == 0:
        raise PipelineError(f"{path} has no data rows; add rows or remove the file")
    schema = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema])

    def read(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        try:
            for batch in iter_parquet(path, ROWS_PER_BATCH, columns):
                yield _decoded(batch)
        except (pa.ArrowException, OSError) as exc:
            raise unreadable(exc) from None

    return SplitRows(schema, meta.num_rows, read)


CANONICAL_INT = r"^-?(0|[1-9][0-9]{0,17})$"  # what int64 holds for sure (18 digits); more stays a name
BLOCK_BYTES = 1 << 24  # the CSV reader's first block size; doubled while one record does not fit


def csv_options(ext: str, columns: list[str], block: int) -> dict[str, Any]:
    """pyarrow CSV options for a dialect of DIALECTS: every column a string; only an empty field is missing."""
    tsv = DIALECTS[ext].get("quoting") == csv.QUOTE_NONE
    return {
        # the header as Python's csv parser reads it (csv_header), so every column is typed by its name
        "read_options": pacsv.ReadOptions(block_size=block, use_threads=False, column_names=columns, skip_rows=1),
        "parse_options": pacsv.ParseOptions(delimiter=DIALECTS[ext].get("delimiter", ","),
                                            quote_char=False if tsv else '"', newlines_in_values=not tsv),
        "convert_options": pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}, null_values=[""],
                                                strings_can_be_null=True, quoted_strings_can_be_null=True),
    }


def dialect_reader(f: Any, path: Path) -> Any:
    """Python's csv reader over the open file ``f`` in the dialect of ``path``'s suffix (DIALECTS)."""
    dialect = DIALECTS[path.suffix.lower()]
    return csv.reader(f, delimiter=dialect.get("delimiter", ","), quoting=dialect.get("quoting", csv.QUOTE_MINIMAL))


def csv_header(path: Path) -> list[str]:
    """The header record of a CSV/TSV, by Python's csv parser in the file's dialect."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = dialect_reader(f, path)
        header = next(reader, [])
    if not header:
        raise PipelineError(f"{path} has no header line; its first line must name the columns (e.g. text,label)")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise PipelineError(f"{path} names the column(s) {', '.join(map(repr, twice))} more than once; give each "
                            "column its own name in the header line")
    return header


def delimited_rows(path: Path) -> SplitRows:
    """A CSV or TSV file with every column as a string (see the module doc), streamed in blocks."""
    ext, header = path.suffix.lower(), csv_header(path)
    block = BLOCK_BYTES

    def batches(columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        options = csv_options(ext, header, block)
        if columns:
            options["convert_options"].include_columns = columns
        with pacsv.open_csv(path, **options) as reader:
            for batch in reader:
                if batch.num_rows:
                    yield batch

    while True:  # the counting pass: it also finds a block size that holds the longest record
        try:
            rows = sum(b.num_rows for b in batches([header[0]]))
            break
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and block < path.stat().st_size + 1:
                block *= 2
                continue
            raise PipelineError(bad_record(path, len(header)) or f"could not read {path} as {ext[1:]}: "
                                f"{first_line(exc)} (a stray quote, delimiter or line break?); fix that record") from None
    if rows == 0:
        raise PipelineError(f"{path} has no data rows (a header only?); add rows or remove the file")
    schema = pa.schema([pa.field(c, pa.string()) for c in header])

    def read(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches(columns)
        except pa.ArrowInvalid as exc:
            raise PipelineError(f"could not read {path} as {ext[1:]}: {first_line(exc)}") from None

    return SplitRows(schema, rows, read)


def bad_record(path: Path, fields: int) -> str | None:
    """Where Python's csv parser finds the first record of a CSV/TSV without ``fields`` fields: the line
    it starts on and what to do; None when every record has them."""
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = dialect_reader(f, path)
        start = 1
        try:
            for record in reader:
                if record and len(record) != fields:
                    return (f"{path} line {start}: expected {fields} fields, saw {len(record)} (a stray quote, "
                            "delimiter or line break?); fix that line")
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"{path} line {start}: {exc} (a stray quote?); fix that line"
    return None


def canonical_integers(rows: SplitRows, column: str) -> bool:
    """Whether every non-missing value of a string column is a canonical integer (surrounding
    whitespace aside), and there is at least one."""
    seen = False
    for table in rows.batches([column]):
        values = pc.utf8_trim_whitespace(table.column(0).drop_null())
        if len(values) and not pc.all(pc.match_substring_regex(values, CANONICAL_INT)).as_py():
            return False
        seen = seen or len(values) > 0
    return seen


def _stream_rows(path: str) -> int:
    """Rows of an Arrow IPC stream file, from its message headers (mapped, bodies not touched)."""
    with pa.memory_map(path, "r") as source:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(source))


def dataset_rows(ds: Any) -> SplitRows:
    """A Hugging Face ``Dataset``: its Arrow cache files read a batch at a time when they hold exactly
    its rows (a whole split, as every local file is); else its memory-mapped table (a sliced split)."""
    files = [f["filename"] for f in ds.cache_files]
    if files and sum(map(_stream_rows, files)) == len(ds):
        def read(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
            for path in files:
                with pa.OSFile(path, "r") as source:
                    for batch in pa.ipc.open_stream(source):
                        yield batch.select(columns) if columns else batch
    else:
        table = ds.with_format("arrow")[:]

        def read(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
            yield from (table.select(columns) if columns else table).to_batches(max_chunksize=ROWS_PER_BATCH)

    return SplitRows(ds.data.schema, len(ds), read)


def check_utf8(path: Path, chunk: int = 1 << 20) -> None:
    """Raise a PipelineError naming the line and byte offset of the first invalid UTF-8 byte."""
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


def find_file(folder: Path, stem: str) -> Path | None:
    found = [folder / f"{stem}{ext}" for ext in FILE_BUILDERS if (folder / f"{stem}{ext}").exists()]
    if len(found) > 1:
        raise PipelineError(f"{folder} has several files for split '{stem}': {', '.join(p.name for p in found)}; keep one")
    return found[0] if found else None


def split_files(src: DataSource) -> dict[str, Path]:
    """The file each split of a local source is read from (demo or files), in split order."""
    folder = Path(src.path)
    if not folder.is_dir():
        raise PipelineError(f"dataset.path {folder} is not a folder; it must hold train.* (and optionally validation.*, test.*)")
    files = {}
    for split, stem in src.splits.items():
        path = find_file(folder, stem)
        if path is None:
            if split == "train":
                have = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
                raise PipelineError(f"{folder} has no {stem}.{{parquet,csv,tsv,jsonl}} for the train split (it has: {have})")
            continue
        files[split] = path
    return files


def _quiet_datasets() -> Any:
    """Hugging Face ``datasets`` without its own log lines and bars: errors reach the user as one line."""
    import datasets

    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    datasets.disable_progress_bars()
    return datasets


def check_regular_file(path: Path) -> None:
    """A data file must be a regular file: a device (``/dev/zero``), FIFO or socket would hang the reader."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc.strerror}; check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        raise PipelineError(f"{path} is not a regular file (a device, FIFO or folder); point dataset.path at a "
                            "folder of data files")


def load_file(path: Path, builders: dict[str, str] = FILE_BUILDERS, cache_dir: str | Path | None = None) -> SplitRows:
    """One local file's rows: Parquet read directly, other types by the Hugging Face builder for its suffix.

    ``cache_dir``: where ``datasets`` writes its Arrow copy of a non-Parquet file; pass a fresh folder
    so the file is read by content, never from an older cache entry.
    """
    ext = path.suffix.lower()
    builder = builders.get(ext)
    if builder is None:
        raise PipelineError(f"{path}: unreadable file type '{ext}'; use one of {', '.join(builders)}")
    check_regular_file(path)
    if path.stat().st_size == 0:
        raise PipelineError(f"{path} is empty; put the data in it or remove it")
    if builder == "parquet":
        return parquet_rows(path)
    check_utf8(path)
    if ext in DIALECTS:
        return delimited_rows(path)
    datasets = _quiet_datasets()
    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        ds = datasets.load_dataset(builder, data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as exc:  # datasets wraps parser errors in many types
        if "corresponds to no data" in str(exc):
            raise PipelineError(f"{path} has no data rows (a header only?); add rows or remove the file") from None
        raise PipelineError(f"could not read {path} as {ext[1:]}: {first_line(exc)}") from None
    return dataset_rows(ds)


def separator_hint(columns: list[str], wanted: str) -> str | None:
    """What to do when a delimited file was read with the wrong separator (a spreadsheet's
    ``text;label`` export read as one column), or None when the columns do not look like that."""
    if len(columns) != 1:
        return None
    sep = next((sep for sep in (";", "\t", ",", "|") if wanted in columns[0].split(sep)), None)
    return sep and (f"its file looks {sep!r}-separated, but .csv is read as comma-separated and .tsv as "
                    "tab-separated; save it comma-separated as .csv or tab-separated as .tsv")


def first_line(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load_splits(src: DataSource, cache_dir: str | Path | None = None) -> dict[str, SplitRows]:
    """Return the splits the source has, with their original columns.

    Local files are cached under ``cache_dir`` (see the module doc); hub downloads use the
    Hugging Face cache, which is what it is for."""
    if src.source == "hub":
        return _load_hub(src)
    splits = {}
    for split, path in split_files(src).items():
        rows = splits[split] = load_file(path, cache_dir=cache_dir)
        if path.suffix.lower() not in DIALECTS:
            continue
        if src.text_column in rows.column_names:
            verify_delimited(path, rows, src.text_column)
        if src.label_column in rows.column_names and canonical_integers(rows, src.label_column):
            splits[split] = rows.as_ids(src.label_column)
    return splits


def verify_delimited(path: Path, rows: SplitRows, text_column: str) -> None:
    """Re-read a CSV/TSV with Python's own csv parser (same dialect) and check that every record's
    text and the number of records equal what was loaded; else name the first line that disagrees."""
    csv.field_size_limit(sys.maxsize)
    loaded = (text for table in rows.batches([text_column]) for text in table.column(0).to_pylist())
    end = object()
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = dialect_reader(f, path)
        header = next(reader, [])
        col = header.index(text_column) if text_column in header else None
        records = 0
        for record in reader:
            if not record:
                continue  # a blank line, skipped by both parsers
            text = next(loaded, end)
            expected = record[col] if col is not None and col < len(record) else None
            if text is end or (text or "") != (expected or "") or len(record) != len(header):
                raise PipelineError(f"{path} line {reader.line_num}: the record there does not parse as one row of "
                                    f"{len(header)} fields (stray quote, delimiter or line break?); fix that line")
            records += 1
    extra = sum(1 for _ in loaded)
    if extra:
        raise PipelineError(f"{path}: {records + extra} rows were read but the file holds {records} records; check its quoting")


OFFLINE_HINT = "use a local copy with dataset.source=files"


def _offline() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


def check_hub_reachable(timeout: float = 3.0) -> None:
    """Fail in seconds, not after Hugging Face's retries, when the hub cannot be reached at all.

    Skipped in offline mode (the cache answers) and behind a proxy (only the proxy knows the way)."""
    if _offline() or any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise PipelineError(f"cannot reach the Hugging Face hub at {url.scheme}://{url.netloc} "
                            f"({exc.strerror or type(exc).__name__}); no network: {OFFLINE_HINT}") from None


def _load_hub(src: DataSource) -> dict[str, SplitRows]:
    datasets = _quiet_datasets()
    check_hub_reachable()
    splits = {}
    for split, hub_split in src.splits.items():
        try:
            ds = datasets.load_dataset(src.path, split=hub_split)
        except Exception as exc:
            hint = f" (offline mode is on: {OFFLINE_HINT})" if _offline() else ""
            if split != "train" and "split" in str(exc).lower():
                continue
            raise PipelineError(f"could not load hub dataset '{src.path}' split '{hub_split}'{hint}: {first_line(exc)}") from None
        splits[split] = dataset_rows(ds)
    return splits
