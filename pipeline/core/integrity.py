"""Checksums every stage folder carries, checked by every stage that reads it.

A stage writes its output folder through :func:`sealed_dir`: when the folder is
complete, ``checksums.json`` is written last, listing every file's size and
sha256, plus the sha256 of that listing itself. A consumer calls
:func:`verify_dir` before it reads anything, so a flipped byte, a truncated or
missing file, an edited manifest or a folder left by an interrupted run is
refused with one line naming the file and the command that repairs it, and no
stage ever re-checksums input it did not verify. A sealed folder holds exactly its
listing: a file added after the seal (a stray ``test.parquet``) is refused too, so
no reader takes it for a split.

``checksums.json``::

    {"format": 1,
     "files": {"<relative path>": {"bytes": int, "sha256": hex}, ...},
     "self_sha256": sha256 of the JSON of {"format", "files"} (sorted keys, no spaces)}

It holds content only (no times, no host), so identical outputs have identical
bytes and DVC's cascade stops where results do not change.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

from .errors import PipelineError
from .fileio import atomic_dir, sha256_bytes, sha256_file, write_json

CHECKSUMS = "checksums.json"
FORMAT = 1


def _listing_hash(files: dict) -> str:
    return sha256_bytes(json.dumps({"format": FORMAT, "files": files}, sort_keys=True, separators=(",", ":")).encode())


def seal(folder: str | os.PathLike) -> dict:
    """Write ``checksums.json`` for every file under ``folder`` (call when the folder is complete)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != CHECKSUMS}
    body = {"format": FORMAT, "files": files, "self_sha256": _listing_hash(files)}
    write_json(folder / CHECKSUMS, body)
    return body


@contextlib.contextmanager
def sealed_dir(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`pipeline.core.fileio.atomic_dir`, sealed with ``checksums.json`` just before it is renamed into place."""
    with atomic_dir(path) as tmp:
        yield tmp
        seal(tmp)


def repair_hint(folder: Path, stage: str) -> str:
    return f"run `dvc checkout {folder.as_posix()}` or `dvc repro -f {stage}`"


def verify_dir(folder: str | os.PathLike, stage: str) -> dict[str, dict]:
    """Check ``folder`` (the output of ``stage``) against its ``checksums.json``; return the file listing.

    Raises a one-line :class:`PipelineError` naming the file and the repair command when the
    folder is missing, was never sealed, or any file is missing, truncated or altered.
    """
    folder = Path(folder)
    hint = repair_hint(folder, stage)
    if not folder.is_dir():
        raise PipelineError(f"{folder} not found; run `textpipe {stage}` (or `dvc repro {stage}`) first")
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise PipelineError(f"{listing} is missing (an interrupted or older run wrote {folder}); {hint}")
    try:
        body = json.loads(listing.read_text(encoding="utf-8"))
        files = body["files"]
        ok = body.get("format") == FORMAT and isinstance(files, dict) and body.get("self_sha256") == _listing_hash(files)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise PipelineError(f"{listing} is damaged or was edited; {hint}")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != CHECKSUMS and p.relative_to(folder).as_posix() not in files)
    if extra:  # readers find splits by name: a file added after the seal would be read as one
        raise PipelineError(f"{folder / extra[0]} is not in {CHECKSUMS} (added after {folder} was written); "
                            f"remove it, or {hint}")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise PipelineError(f"{path} is missing; {hint}")
        if path.stat().st_size != entry["bytes"]:
            raise PipelineError(f"{path} has {path.stat().st_size} bytes, not the {entry['bytes']} it was written "
                                f"with (truncated or edited); {hint}")
        if sha256_file(path) != entry["sha256"]:
            raise PipelineError(f"{path} does not match its checksum (corrupt or edited); {hint}")
    return files
