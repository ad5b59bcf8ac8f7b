"""Exact duplicate and overlap counts of the texts of every split, in bounded memory.

Ingest reports, per output split, the rows that repeat an earlier row's text and the texts
seen with more than one label, and for validation and test the rows whose text is also in
train. :class:`DuplicateCounter` takes an 8-byte fingerprint of each text (blake2b) with
its label and split. It keeps at most ``SPILL_ROWS`` of them in memory; beyond that it
writes them to a scratch folder in hash parts (:func:`pipeline.core.fileio.write_parts`) and
counts each part on its own at the end. Equal texts have equal fingerprints and so land in
the same part, so the per-part counts add up to the exact totals.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from .core.fileio import read_parts, write_parts

_RECORDS = pa.schema([("fingerprint", pa.uint64()), ("label", pa.int64()), ("split", pa.int8())])


def text_hashes(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An 8-byte fingerprint of each text (to count exact duplicates and overlap)."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts.to_pylist()):
        out[i] = int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
    return out


class DuplicateCounter:
    """Exact duplicate counts per split and validation/test overlap with train (see the module docstring).

    Memory: at most ``SPILL_ROWS`` fingerprints while counting, then one part at a time, with
    ``parts`` chosen from the expected rows so that a part holds about ``PART_ROWS``.
    """

    SPILL_ROWS = 1 << 20
    PART_ROWS = 1 << 20

    def __init__(self, splits: list[str], scratch: Path, expected_rows: int):
        self.splits = list(splits)
        self.parts = max(1, -(-expected_rows // self.PART_ROWS))
        self._scratch = scratch
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.spills: list[Path] = []

    def add(self, split: str, texts: pa.ChunkedArray | pa.Array, labels: np.ndarray) -> None:
        index = np.full(len(texts), self.splits.index(split), np.int8)
        batch = pa.record_batch([pa.array(text_hashes(texts)), pa.array(labels, pa.int64()), pa.array(index)],
                                schema=_RECORDS)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.SPILL_ROWS:
            self._spill()

    def _held(self) -> pa.RecordBatch:
        """The fingerprints held in memory as one record batch; memory starts empty again."""
        table = pa.Table.from_batches(self._pending, schema=_RECORDS).combine_chunks()
        self._pending, self._pending_rows = [], 0
        return pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=_RECORDS)

    def _spill(self) -> None:
        records = self._held()
        path = self._scratch / f"fingerprints-{len(self.spills):05d}.arrow"
        part = (records.column(0).to_numpy() >> np.uint64(40)) % np.uint64(self.parts)
        write_parts(path, records, part.astype(np.int64), self.parts)
        self.spills.append(path)

    def stats(self) -> dict:
        """``{"duplicates": {split: {"repeated_rows", "texts_with_conflicting_labels"}},
        "overlap": {"<split>_in_train": rows}}``, exact."""
        if self.spills:
            if self._pending:
                self._spill()
            pieces = read_parts(self.spills, self.parts)
        else:
            pieces = iter([pa.Table.from_batches([self._held()])])
        dupes = {s: {"repeated_rows": 0, "texts_with_conflicting_labels": 0} for s in self.splits}
        overlap = {f"{s}_in_train": 0 for s in self.splits if s != "train"}
        for piece in pieces:
            fingerprints = piece.column("fingerprint").to_numpy()
            labels = piece.column("label").to_numpy()
            split = piece.column("split").to_numpy()
            in_split = {s: split == i for i, s in enumerate(self.splits)}
            train = np.unique(fingerprints[in_split["train"]]) if "train" in in_split else np.zeros(0, np.uint64)
            for s, mask in in_split.items():
                h, y = fingerprints[mask], labels[mask]
                distinct, pairs = _distinct(h, y)
                dupes[s]["repeated_rows"] += len(h) - distinct
                dupes[s]["texts_with_conflicting_labels"] += pairs - distinct
                if s != "train":
                    overlap[f"{s}_in_train"] += int(np.isin(h, train).sum())
        return {"duplicates": dupes, "overlap": overlap}


def _distinct(fingerprints: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """Distinct fingerprints, and distinct (fingerprint, label) pairs."""
    if not len(fingerprints):
        return 0, 0
    order = np.lexsort((labels, fingerprints))
    h, y = fingerprints[order], labels[order]
    new_text = h[1:] != h[:-1]
    return 1 + int(new_text.sum()), 1 + int((new_text | (y[1:] != y[:-1])).sum())
