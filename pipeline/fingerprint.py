"""Fingerprints of a dataset's local files, so that editing them reruns ingest.

DVC reruns a stage when its deps change, but a dataset folder given by
``dataset.path`` can live anywhere (``../shared/data/imdb``), so it is not a
DVC dep. Instead the ``check`` stage, which DVC runs on every ``dvc repro``
(``always_changed``), writes each split file's size and sha256 into
``artifacts/check.json``, which ingest depends on: an edited, replaced, added
or removed split file changes check.json and reruns ingest; an untouched one
leaves check.json byte-identical and nothing reruns.

The fingerprint holds content only (file name, bytes, sha256; no times), so a
``touch`` or a copy with new mtimes reruns nothing. To keep a no-op
``dvc repro`` cheap on big data, a file is hashed again only when its size,
mtime or inode changed since the last hash; those stat facts live in a cache
beside the artifacts (``artifacts/.cache/file-hashes.json``, not a DVC output),
the same trade DVC makes for its own deps. A file rewritten with its size and
mtime preserved (``cp -p``, ``rsync -t``) keeps its cached hash: delete the
cache file or run ``dvc repro -f ingest`` after such a copy.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .core.config import DataSource
from .core.fileio import sha256_file, write_json
from .sources import check_regular_file, split_files

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
LOG_BYTES = 256 << 20  # say so before hashing this much: the first check of a big dataset takes a while


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def _read_cache(cache: Path) -> dict:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return {k: v for k, v in data["files"].items() if _sound_entry(v)}  # a damaged entry: hashed again


def _sound_entry(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("stat"), list) and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64 and all(c in "0123456789abcdef" for c in entry["sha256"]))


def file_hashes(paths: list[Path], cache: Path) -> dict[Path, dict]:
    """{"bytes", "sha256"} of each file, reusing the cached hash of a file whose stat facts are unchanged."""
    known = _read_cache(cache)
    keys = {p: str(p.resolve()) for p in paths}
    stats = {p: _stat_key(p) for p in paths}
    stale = [p for p in paths if (known.get(keys[p]) or {}).get("stat") != stats[p]]
    total = sum(stats[p][0] for p in stale)
    if total >= LOG_BYTES:
        log.info("hashing %d dataset file(s), %.1f GB, to notice edits (once per change)", len(stale), total / 1e9)
    for p in stale:
        known[keys[p]] = {"stat": stats[p], "sha256": sha256_file(p)}
    if stale:
        live = {k: v for k, v in known.items() if Path(k).exists()}
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, {"format": CACHE_FORMAT, "files": live})
    return {p: {"bytes": stats[p][0], "sha256": known[keys[p]]["sha256"]} for p in paths}


def source_fingerprint(src: DataSource, cache: Path) -> dict[str, dict]:
    """{split: {"file", "bytes", "sha256"}} for a `files` source; {} for the demo (a code dep of
    ingest already) and the hub (identified by its id)."""
    if src.source != "files":
        return {}
    files = split_files(src)
    for path in files.values():
        check_regular_file(path)  # never block on a FIFO or hash a device
    hashes = file_hashes(list(files.values()), cache)
    return {split: {"file": path.name, **hashes[path]} for split, path in files.items()}
