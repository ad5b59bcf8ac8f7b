"""Stage ``tokenize``: normalise text and split it into tokens with spaCy.

spaCy's own ``nlp.pipe(n_process=N)`` pickles whole ``Doc`` objects between
processes, which on a 2-core machine is about 10x slower than one process. We
parallelise ourselves instead: each worker process builds the tokenizer once,
tokenizes a chunk of texts and sends back one Arrow ``list<string>`` array,
which crosses the process boundary as a few flat buffers.

Output contract (``<out>/``)::

    <split>.arrow   Arrow IPC file, columns:
                      tokens (list<string>), label (int64), length (int32)
                    schema metadata b"textpipe.labels": class names
                    written in record batches of ROWS_PER_BATCH rows, so the
                    bytes do not depend on ``workers`` or ``chunk_size``
    stats.json      per split: docs, tokens, empty_docs
    params.json     the tokenize params that shape the tokens (not workers
                    or chunk_size, which cannot change them)
    checksums.json  size and sha256 of every file, written last

Timings (seconds, tokens/s, workers) are returned separately: the stage
writes them to its DVC metrics file, outside the cached output, so a rerun
that produces the same tokens has the same hash and DVC stops there.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .core.config import TokenizeConfig
from .core.errors import PipelineError
from .core.fileio import ArrowWriter, iter_parquet, write_json
from .core.integrity import sealed_dir, verify_dir
from .core.procs import quiet_worker
from .core.schema import SPLITS
from .word_memo import WordMemo, memo_applies

_T = TokenizeConfig  # its field defaults are the library defaults
TOKENS_TYPE = pa.list_(pa.string())
_HTML_TAG = re.compile(r"<[^>]{0,200}>")
# ASCII characters str.split() splits on, besides the space itself.
_ASCII_SPACES_BUT_SPACE = tuple(c for c in map(chr, range(128)) if c.isspace() and c != " ")


def _collapse_whitespace(text: str) -> str:
    """``" ".join(text.split())``, without splitting texts it would return unchanged: an ASCII text
    (a flag CPython stores) with no run of spaces, no space at either end and no other whitespace
    character. Most texts are such, and the checks are C-speed scans (2.5x faster on IMDB)."""
    if (text.isascii() and "  " not in text and not text.startswith(" ") and not text.endswith(" ")
            and not any(c in text for c in _ASCII_SPACES_BUT_SPACE)):
        return text
    return " ".join(text.split())


@dataclass(frozen=True)
class TextNormalizer:
    """Cheap string clean-up applied before tokenization."""

    lowercase: bool = _T.lowercase
    strip_html: bool = _T.strip_html
    normalize_whitespace: bool = _T.normalize_whitespace

    def __call__(self, text: str) -> str:
        if self.strip_html and "<" in text:
            text = _HTML_TAG.sub(" ", text)
        if self.normalize_whitespace:
            text = _collapse_whitespace(text)
        if self.lowercase:
            text = text.lower()
        return text


@contextlib.contextmanager
def _torch_hidden() -> Iterator[None]:
    """Import spaCy without torch, in a process that has loaded neither.

    thinc (under spaCy) imports torch only to offer torch-backed layers, which a
    tokenizer never uses; that import is ~1.4 s of spaCy's ~2 s, paid by every
    tokenizer process. ``import torch`` works as usual afterwards.
    """
    if "torch" in sys.modules or "spacy" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        yield
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


def load_tokenizer(lang: str = _T.lang, spacy_pipeline: str | None = None) -> Callable:
    """spaCy tokenizer: ``spacy.blank(lang)``'s by default, or an installed pipeline's
    (which may need torch, so only a blank language imports spaCy without it)."""
    with contextlib.nullcontext() if spacy_pipeline else _torch_hidden():
        import spacy

    try:
        nlp = spacy.load(spacy_pipeline) if spacy_pipeline else spacy.blank(lang)
    except (OSError, ImportError) as exc:
        what = f"spaCy pipeline '{spacy_pipeline}'" if spacy_pipeline else f"spaCy language '{lang}'"
        raise PipelineError(f"cannot load {what}: {str(exc).splitlines()[0]}; install it or use tokenize.lang") from None
    return nlp.tokenizer


# Per-process state, built by _init_worker and built again by _start_tokenizer.
_WORKER: dict = {}
# spaCy's vocab keeps every distinct token string it has seen, with its lexeme (~400 bytes each), and
# never lets go: past this many new ones, a worker starts again with a new tokenizer (~0.2 s), so its
# memory stays bounded however many distinct strings the corpus has (~200 MB of them at most)
MAX_STRINGS = 500_000


def _init_worker(lang: str, spacy_pipeline: str | None, normalizer: TextNormalizer, in_pool: bool = False) -> None:
    if in_pool:
        quiet_worker()
    _WORKER["normalizer"] = normalizer
    _WORKER["spacy"] = (lang, spacy_pipeline)
    _start_tokenizer()


def _start_tokenizer() -> None:
    """A new tokenizer (and an empty word memo) for this worker: the same tokens, a vocab with none of
    the corpus's strings yet (a trained pipeline's vocab starts with its own, so they are not counted)."""
    tokenizer = load_tokenizer(*_WORKER["spacy"])
    _WORKER["tokenizer"] = tokenizer
    _WORKER["strings_at_start"] = len(tokenizer.vocab.strings)
    # words are tokenized once each, not at every occurrence, where that is exact (see word_memo)
    use_memo = _WORKER["normalizer"].normalize_whitespace and memo_applies(tokenizer)
    _WORKER["memo"] = WordMemo(tokenizer) if use_memo else None


def _doc_orths(docs: list, whitespace_left: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the docs' token ORTH hashes one after another, the number of tokens of each doc), whitespace
    tokens dropped. spaCy makes a whitespace token only of a whitespace run other than one space, so
    when the normaliser left none there is nothing to drop and no IS_SPACE to read (reading it too
    takes 2.7x as long as ORTH alone: 1.2 s of CPU on IMDB)."""
    from spacy.attrs import IS_SPACE, ORTH

    if not whitespace_left:
        attrs = [d.to_array([ORTH]) for d in docs]  # (n, 1), or (0,) for an empty doc
        return np.concatenate(attrs, axis=None), np.fromiter(map(len, attrs), dtype=np.int64, count=len(attrs))
    attrs = [d.to_array([ORTH, IS_SPACE]).reshape(-1, 2) for d in docs]
    flat = np.concatenate(attrs)
    keep = flat[:, 1] == 0
    doc_of_token = np.repeat(np.arange(len(docs)), [len(a) for a in attrs])[keep]
    return flat[keep, 0], np.bincount(doc_of_token, minlength=len(docs))


def _tokenize_chunk(texts: Sequence[str]) -> pa.Array:
    """Tokenize a chunk into one ``list<string>`` array.

    Token strings are not read one ``Token`` at a time: the tokens' ORTH hashes
    come out as a numpy array (from the worker's ``WordMemo``, which tokenizes
    each distinct word once, or where it does not apply from each spaCy doc),
    the chunk's distinct hashes (found by a hash table, several times faster
    than sorting) are turned into strings once, and Arrow expands the
    dictionary in C++. Whitespace tokens are dropped.
    """
    if len(_WORKER["tokenizer"].vocab.strings) - _WORKER["strings_at_start"] > MAX_STRINGS:
        _start_tokenizer()
    tokenizer, normalize, memo = _WORKER["tokenizer"], _WORKER["normalizer"], _WORKER["memo"]
    if not texts:
        return pa.array([], type=TOKENS_TYPE)
    if memo is not None:
        kept, lengths = memo.orths([normalize(t) for t in texts])
    else:
        docs = list(tokenizer.pipe((normalize(t) for t in texts), batch_size=256))
        kept, lengths = _doc_orths(docs, whitespace_left=not normalize.normalize_whitespace)
    hashes = pa.array(kept.astype(np.uint64, copy=False)).dictionary_encode()
    strings = tokenizer.vocab.strings
    dictionary = pa.array([strings[h] for h in hashes.dictionary.to_pylist()], pa.string())
    values = pa.DictionaryArray.from_arrays(hashes.indices, dictionary).cast(pa.string())
    offsets = np.zeros(len(texts) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


class ParallelTokenizer:
    """Tokenize texts over ``workers`` processes, chunk by chunk, order preserved."""

    @classmethod
    def from_config(cls, cfg: TokenizeConfig, workers: int | None = None) -> "ParallelTokenizer":
        normalizer = TextNormalizer(cfg.lowercase, cfg.strip_html, cfg.normalize_whitespace)
        return cls(cfg.lang, cfg.spacy_pipeline, normalizer, cfg.workers if workers is None else workers, cfg.chunk_size)

    def __init__(self, lang: str = _T.lang, spacy_pipeline: str | None = None, normalizer: TextNormalizer | None = None,
                 workers: int = _T.workers, chunk_size: int = _T.chunk_size):
        self.init_args = (lang, spacy_pipeline, normalizer or TextNormalizer())
        self.workers = workers or os.cpu_count() or 1
        self.chunk_size = max(1, int(chunk_size))
        self._pool = None

    def __enter__(self) -> "ParallelTokenizer":
        if self.workers > 1:
            self._pool = mp.get_context().Pool(self.workers, initializer=_init_worker, initargs=(*self.init_args, True))
        else:
            _init_worker(*self.init_args)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def stream(self, chunks: Iterable[Sequence[str]]) -> Iterator[pa.Array]:
        """Tokenize chunks of texts in order, holding at most two chunks per worker in flight,
        so memory does not grow with the input (``Pool.imap`` would read all of it ahead)."""
        if self._pool is None:
            yield from map(_tokenize_chunk, chunks)
            return
        pending: collections.deque = collections.deque()
        for chunk in chunks:
            pending.append(self._pool.apply_async(_tokenize_chunk, (chunk,)))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def tokenize(self, texts: Sequence[str], desc: str | None = "tokenize") -> pa.ChunkedArray:
        """A list of texts (small inputs: predict) as one ``list<string>`` array, with a progress bar
        named ``desc`` (none when ``desc`` is None: the caller shows its own)."""
        chunks = (texts[i:i + self.chunk_size] for i in range(0, len(texts), self.chunk_size))
        out = []
        with tqdm(total=len(texts), desc=desc, unit="doc", disable=None if desc else True) as bar:
            for arr in self.stream(chunks):
                out.append(arr)
                bar.update(len(arr))
        return pa.chunked_array(out, type=TOKENS_TYPE)


def local_token_batches(tok: ParallelTokenizer, raw_paths: Sequence[Path]) -> Iterator[tuple[pa.Array, pa.Array]]:
    """(tokens, label) arrays of raw Parquet splits, one split after another in row order, tokenized
    by the local worker pool; the pool starts on a split while the previous one's last chunks finish.
    The last ``workers x chunk_size`` rows go out in quarter chunks, so the workers finish together
    instead of one waiting up to a whole chunk for the other (the bytes written do not depend on it)."""
    labels: collections.deque = collections.deque()
    left = sum(pq.ParquetFile(path).metadata.num_rows for path in raw_paths)
    tail = tok.workers * tok.chunk_size if tok.workers > 1 else 0

    def chunks() -> Iterator[list[str]]:
        nonlocal left
        for path in raw_paths:
            for batch in iter_parquet(path, tok.chunk_size, ["text", "label"]):
                step = max(1, tok.chunk_size // 4) if left <= tail else len(batch)
                left -= len(batch)
                for start in range(0, len(batch), step):
                    piece = batch.slice(start, step)
                    labels.append(piece.column("label"))
                    yield piece.column("text").to_pylist()

    for arr in tok.stream(chunks()):
        yield arr, labels.popleft()


class RowRuns:
    """Cuts one stream of (tokens, label) arrays into consecutive runs of given row counts (one run per
    split), slicing a batch that straddles two runs, so an engine can stream every split in one go."""

    def __init__(self, batches: Iterable[tuple[pa.Array, pa.Array]]):
        self._batches = iter(batches)
        self._held: tuple[pa.Array, pa.Array] | None = None

    def take(self, rows: int) -> Iterator[tuple[pa.Array, pa.Array]]:
        """The next ``rows`` rows; fewer if the stream ends first (write_tokens then reports the count)."""
        while rows > 0:
            if self._held is None:
                self._held = next(self._batches, None)
                if self._held is None:
                    return
            tokens, labels = self._held
            if len(tokens) <= rows:
                self._held = None
                rows -= len(tokens)
                yield tokens, labels
            else:
                self._held = (tokens[rows:], labels[rows:])
                yield tokens[:rows], labels[:rows]
                rows = 0

    def rest(self) -> int:
        """Rows left over after the last run (0 when the counts matched the stream)."""
        held = len(self._held[0]) if self._held is not None else 0
        return held + sum(len(tokens) for tokens, _ in self._batches)


def write_tokens(batches: Iterator[tuple[pa.Array, pa.Array]], raw_path: Path, out_path: Path, desc: str) -> dict:
    """Write (tokens, label) arrays as they come into ``out_path``; return the split's counts."""
    source = pq.ParquetFile(raw_path)
    schema = pa.schema([("tokens", TOKENS_TYPE), ("label", pa.int64()), ("length", pa.int32())],
                       metadata=source.schema_arrow.metadata)
    docs = tokens = empty = 0
    with ArrowWriter(out_path, schema) as writer, \
            tqdm(total=source.metadata.num_rows, desc=desc, unit="doc", disable=None) as bar:
        for arr, labels in batches:
            lengths = pc.list_value_length(arr).cast(pa.int32())
            writer.write(pa.RecordBatch.from_arrays([arr, labels, lengths], schema=schema))
            docs += len(arr)
            tokens += int(pc.sum(lengths).as_py() or 0)
            empty += int(pc.sum(pc.equal(lengths, 0)).as_py() or 0)
            bar.update(len(arr))
    if docs != source.metadata.num_rows:
        raise PipelineError(f"tokenize wrote {docs} rows for {raw_path} which holds {source.metadata.num_rows}; "
                            "rerun `dvc repro tokenize`")
    return {"docs": docs, "tokens": tokens, "empty_docs": empty}


def tokenize_dataset(raw_dir: str | Path, out_dir: str | Path, cfg: TokenizeConfig) -> tuple[dict, dict]:
    """Tokenize every split in ``raw_dir`` (the ingest output) into ``out_dir``; return (stats, timings).

    The splits stream one after another through one worker pool (or one Ray Data execution with
    ``engine: ray``): Parquet record batches in, chunks over the workers, Arrow record batches out,
    so memory stays flat whatever the corpus size and no worker idles between splits.
    """
    raw_dir = Path(raw_dir)
    verify_dir(raw_dir, "ingest")
    splits = [s for s in SPLITS if (raw_dir / f"{s}.parquet").exists()]
    if "train" not in splits:
        raise PipelineError(f"{raw_dir} has no train.parquet; run `textpipe ingest` (or `dvc repro ingest`) first")
    stats: dict = {"splits": {}}
    timings: dict = {"splits": {}}
    start = time.perf_counter()
    raw_paths = [raw_dir / f"{split}.parquet" for split in splits]
    workers = cfg.workers or auto_workers(raw_paths, cfg.engine)
    with _engine(cfg, workers) as token_batches, sealed_dir(out_dir) as tmp:
        runs = RowRuns(token_batches(raw_paths))
        for split, raw_path in zip(splits, raw_paths):
            t0 = time.perf_counter()
            rows = runs.take(pq.ParquetFile(raw_path).metadata.num_rows)
            stats["splits"][split] = write_tokens(rows, raw_path, tmp / f"{split}.arrow", f"tokenize {split}")
            timings["splits"][split] = {"seconds": round(time.perf_counter() - t0, 3)}
        if extra := runs.rest():
            raise PipelineError(f"tokenize received {extra} rows more than {raw_dir} holds; rerun `dvc repro tokenize`")
        stats["tokens"] = sum(s["tokens"] for s in stats["splits"].values())
        write_json(tmp / "params.json", {"tokenize": cfg.content_params()})
        write_json(tmp / "stats.json", stats)
    seconds = time.perf_counter() - start
    timings.update(seconds=round(seconds, 3), tokens_per_second=round(stats["tokens"] / max(seconds, 1e-9)),
                   workers=workers, engine=cfg.engine)
    return stats, timings


# Below this much text (all splits, uncompressed) `workers: 0` tokenizes in the stage's own process:
# each worker process pays ~1.2 s of CPU to start (Python, spaCy, this package), which 1 MiB of
# text does not earn back (500 IMDB reviews, 0.66 MB: 3.4-3.7 s either way, one process 1.2 s
# less CPU; 2,000 reviews, 2.6 MB: two processes 0.5-0.9 s faster).
POOL_MIN_TEXT_BYTES = 1 << 20


def auto_workers(raw_paths: Sequence[Path], engine: str = _T.engine) -> int:
    """Processes for ``workers: 0``: every core, or one for a local run on less than
    ``POOL_MIN_TEXT_BYTES`` of text, as the Parquet footers give it (the text column's encoded size
    before compression: repeated texts count once, as the word memo makes them cheap)."""
    cores = os.cpu_count() or 1
    if engine != "local" or cores == 1:
        return cores
    text_bytes = 0
    for path in raw_paths:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("text")
        text_bytes += sum(meta.row_group(g).column(column).total_uncompressed_size for g in range(meta.num_row_groups))
    return cores if text_bytes >= POOL_MIN_TEXT_BYTES else 1


@contextlib.contextmanager
def _engine(cfg: TokenizeConfig, workers: int) -> Iterator[Callable[[Sequence[Path]], Iterator[tuple[pa.Array, pa.Array]]]]:
    """A function from raw split paths to their (tokens, label) arrays in order, by the configured engine."""
    if cfg.engine == "ray":
        from . import ray_engine

        with ray_engine.ray_session(cfg.ray_address, workers):
            yield lambda paths: ray_engine.token_batches(paths, cfg, workers)
    else:
        with ParallelTokenizer.from_config(cfg, workers) as tok:
            yield lambda paths: local_token_batches(tok, paths)
