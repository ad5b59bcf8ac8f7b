"""Atomic artifact writing and checksums.

Every artifact is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written file under the final name. Manifests and
stats are written last, so their presence means the stage finished.
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_prefix(final: Path) -> str:
    """Temporary siblings carry the writer's pid, so a later run can tell a dead writer's leftovers."""
    return f".{final.name}.{os.getpid()}."


def sweep_stale(final: str | os.PathLike) -> int:
    """Remove temporary siblings of ``final`` left by writers that are no longer running; return how many."""
    final = Path(final)
    removed = 0
    if not final.parent.is_dir():
        return 0
    for entry in final.parent.glob(f".{glob_escape(final.name)}.*"):
        parts = entry.name[len(final.name) + 2:].split(".")
        if len(parts) < 2 or not parts[0].isdigit() or parts[-1] not in ("tmp", "old") or _alive(int(parts[0])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are for the whole team
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` whole.

    A stage that writes a folder builds it completely in the temporary
    directory, so readers never see a mix of old and new files. Leftovers of
    writers that were killed are removed first. The swap moves any existing
    folder aside under a name unique to this writer, so concurrent writers
    never collide on a shared name: the last one to finish wins whole.
    """
    final = Path(path)
    sweep_stale(final)
    with scratch_dir(final) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        yield tmp
        _swap_in(tmp, final)


@contextlib.contextmanager
def scratch_dir(near: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory beside ``near`` (so under ``artifacts/``, on the output's disk), removed on
    exit; one left by a killed writer is removed by the next :func:`sweep_stale` of ``near``."""
    final = Path(near)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, final: Path, attempts: int = 20) -> None:
    for _ in range(attempts):
        old = None
        if final.exists():
            old = final.with_name(f"{temp_prefix(final)}{uuid.uuid4().hex[:8]}.old")
            try:
                os.replace(final, old)
            except FileNotFoundError:  # another writer moved it first
                old = None
        try:
            os.replace(tmp, final)
            return
        except OSError as exc:  # another writer put its folder in place between our two renames
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    raise OSError(errno.EBUSY, f"could not put {final} in place: other writers keep replacing it")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def csv_writer(path: str | os.PathLike, header: list[str]) -> Iterator[Any]:
    """A ``csv.writer`` (``\n`` line endings) on a temporary file that has ``header`` as its first row and
    becomes ``path`` when the block ends without an error."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        yield writer


def write_csv(path: str | os.PathLike, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Write a CSV file with a header row, atomically; ``rows`` may be a generator (written as it yields,
    never held whole)."""
    with csv_writer(path, header) as writer:
        writer.writerows(rows)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ROWS_PER_BATCH = 8192


def write_arrow(table: pa.Table, path: str | os.PathLike) -> None:
    """Write an uncompressed Arrow IPC file (Feather v2), so readers can memory-map it.

    Written by :class:`ArrowWriter`: record batches of ``ROWS_PER_BATCH`` rows with compact
    buffers whatever the input's chunking or slicing, so equal tables give equal bytes.
    """
    with ArrowWriter(path, table.schema) as writer:
        writer.write(table)


def read_arrow(path: str | os.PathLike) -> pa.Table:
    """Read a whole Arrow IPC file memory-mapped (zero-copy); small files and tests only."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def iter_arrow(path: str | os.PathLike, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow IPC file, one at a time, each read into memory: pages of a
    memory-mapped file would stay resident in the process (and its PSS) once read, so a pass over a
    file larger than memory would look like holding it whole."""
    with pa.OSFile(str(path), "r") as source:
        reader = pa.ipc.open_file(source)
        if columns:  # read only these columns' buffers from disk
            fields = [reader.schema.get_field_index(c) for c in columns]
            reader = pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=sorted(fields)))
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield batch.select(columns) if columns else batch


PARQUET_READ_BUFFER = 1 << 20


def iter_parquet(path: str | os.PathLike, batch_size: int, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """Record batches of a Parquet file, holding a few pages of it at a time, never a row group
    (which can be the whole file: pyarrow and pandas write up to a million rows in one).

    - ``pre_buffer=False``: else pyarrow keeps every row group's bytes it has read until the file
      is closed (apache/arrow#39808), so a pass over a split would grow with the split.
    - ``buffer_size``: else it reads each column chunk of a row group whole before decoding it.
    """
    source = pq.ParquetFile(str(path), pre_buffer=False, buffer_size=PARQUET_READ_BUFFER)
    yield from source.iter_batches(batch_size=batch_size, columns=columns)


def read_arrow_batch(path: str | os.PathLike, index: int, column: str) -> pa.Array:
    """One column of one record batch of an Arrow IPC file (memory-mapped)."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).get_batch(index).column(column)


def arrow_batches(path: str | os.PathLike) -> int:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).num_record_batches


def arrow_schema(path: str | os.PathLike) -> pa.Schema:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).schema


def write_parts(path: str | os.PathLike, batch: pa.RecordBatch, part: np.ndarray, parts: int) -> None:
    """Write ``batch`` as one Arrow file of ``parts`` record batches: batch p holds, in their order,
    the rows whose ``part`` is p (empty or not). With :func:`read_parts` this is how a stage works on
    data larger than memory one hash part at a time (the vocab's counts, ingest's duplicate counts)."""
    order = np.argsort(part, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=parts))])
    batch = batch.take(pa.array(order))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        for p in range(parts):
            writer.write_batch(batch.slice(bounds[p], bounds[p + 1] - bounds[p]))


def read_parts(paths: list[Path], parts: int) -> Iterator[pa.Table]:
    """Part 0, 1, ... of files written by :func:`write_parts`, each gathered from every file (read, not
    memory-mapped: one part in memory at a time)."""
    with contextlib.ExitStack() as stack:
        readers = [pa.ipc.open_file(stack.enter_context(pa.OSFile(str(p)))) for p in paths]
        for p in range(parts):
            yield pa.Table.from_batches([r.get_batch(p) for r in readers], schema=readers[0].schema)


def _compact(table: pa.Table) -> pa.RecordBatch:
    """``table`` as one record batch whose buffers hold exactly its rows. The IPC writer writes a
    slice's buffers as they are (a sliced list keeps the strings of the rows cut off it), so without
    this copy the bytes would depend on how the rows arrived."""
    return pa.RecordBatch.from_arrays([pa.concat_arrays(col.chunks) for col in table.columns], schema=table.schema)


class _FixedBatches:
    """Collects rows and writes them in record batches of exactly ``ROWS_PER_BATCH`` rows (the last one
    shorter), so what a writer writes depends on the rows only, never on how they arrived."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        for b in batches:
            if b.num_rows:
                self._pending.append(b)
                self._pending_rows += b.num_rows
                self.rows += b.num_rows
        if self._pending_rows >= ROWS_PER_BATCH:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, self.schema)
        cut = table.num_rows if final else (table.num_rows // ROWS_PER_BATCH) * ROWS_PER_BATCH
        for start in range(0, cut, ROWS_PER_BATCH):
            self._write_batch(_compact(table.slice(start, min(ROWS_PER_BATCH, cut - start))))
        rest = table.slice(cut)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows


class ArrowWriter(_FixedBatches):
    """Writes an Arrow IPC file incrementally, in record batches of exactly ``ROWS_PER_BATCH`` rows."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema):
        super().__init__(schema)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, schema)

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()
        self._sink.close()

    def __enter__(self) -> "ArrowWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._writer.close()
            self._sink.close()


class ParquetWriter(_FixedBatches):
    """Writes a Parquet file incrementally, one row group of ``ROWS_PER_BATCH`` rows at a time."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema):
        super().__init__(schema)
        self._writer = pq.ParquetWriter(str(path), schema)

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()


_HELD_LOCKS: dict[Path, int] = {}


def lock_output(path: str | os.PathLike) -> None:
    """Hold an exclusive lock on writing ``path`` until this process exits.

    The lock is ``flock`` on ``.<name>.lock`` beside ``path``: the kernel releases it when the
    process ends however it ends, so a lock left by a killed run never blocks the next one.
    A second writer of the same output gets a one-line error naming the holder.
    """
    import fcntl

    from .errors import PipelineError

    final = Path(path).absolute()
    if final in _HELD_LOCKS:
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.with_name(f".{final.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise PipelineError(f"{path} is being written by another textpipe process (pid {holder}); "
                            "wait for it to finish or stop it, then run again") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    if not _HELD_LOCKS:
        atexit.register(_forget_failed_outputs)
    _HELD_LOCKS[final] = fd


def _forget_failed_outputs() -> None:
    """At exit: the lock of an output that was never written goes, and so does its folder when that
    leaves it empty, so a failed run leaves no empty ``artifacts/<name>/`` behind."""
    for final in list(_HELD_LOCKS):
        if final.exists():
            continue
        try:
            final.with_name(f".{final.name}.lock").unlink()
            final.parent.rmdir()  # only when empty: other outputs of the dataset stay
        except OSError:
            pass
