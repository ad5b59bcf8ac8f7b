"""The Ray Data engine: tokenize and count tokens on a Ray cluster (``engine: ray``).

The artifact contract does not change: the driver streams the results back,
in row order, into the same writers as the local engine, so the token files
and the vocabulary are byte-identical to the local engine's for the same params.

- tokenize: ``ray.data.read_parquet`` on every raw split at once (one actor
  pool for the stage, not one per split), ``map_batches`` with a class (the
  spaCy tokenizer is built once per actor; an actor pool of ``workers``),
  ``preserve_order`` on, ``iter_batches`` back on the driver, which cuts the
  rows back into splits by their counts.
- vocab: every Ray task counts the tokens of some record batches of the token
  file (memory-mapped where it runs) and a distributed ``groupby().sum()``
  merges the partial counts; only the distinct tokens and their totals reach
  the driver, never the tokens themselves.

``ray_address`` null starts a local Ray for the stage and stops it after
(``RAY_ADDRESS`` in the environment wins, as in every Ray program); an address
connects to that cluster, whose workers must see the artifacts folder (shared
storage). Ray is an optional extra: ``pip install -e '.[ray]'``.

No hang on any cluster shape: the tokenizer actors reserve no CPU of Ray's
(``num_cpus=0``, spread over the nodes), so every CPU stays free for Ray Data's
listing and read tasks, and the pool is capped at the cluster's CPUs
(:func:`pool_size`, one line when it lowers ``tokenize.workers``), so no core
runs two tokenizers. Whatever else stops the work (a node lost, a cluster too
busy), :func:`watched` ends the stage with one line when no batch has come for
``stall_timeout`` seconds, and the stage's temporary output is removed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TypeVar

import pyarrow as pa

from .core.config import TokenizeConfig
from .core.errors import PipelineError
from .core.fileio import arrow_batches, read_arrow_batch
from .progress import log
from .tokenize import TOKENS_TYPE, TextNormalizer, _init_worker, _tokenize_chunk

T = TypeVar("T")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PipelineError("engine 'ray' needs Ray: pip install -e '.[ray]' (or set the engine to local)") from None
    return ray


CONNECT_S = 120  # seconds ray.init may take to reach a cluster before the stage gives up in one line


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[object]:
    """Connected Ray: an existing session, the cluster at ``address`` / $RAY_ADDRESS, or a local one we stop after."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"address": address} if address else {"num_cpus": num_cpus + 1, "_node_ip_address": "127.0.0.1"}
    with connect_deadline(address or "a local Ray"):
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    # no lines of Ray Data's around the stage's own: its failures reach the stage as exceptions, said in one line
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    failed = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        yield ray
        failed = False
    finally:
        if failed:  # the stage's one line is said: Ray's teardown of the work it stops adds no more
            logging.getLogger("ray").setLevel(logging.CRITICAL + 1)
            threading.excepthook = lambda args: None  # Ray's own threads, failing as the session goes
        ray.shutdown()


@contextlib.contextmanager
def connect_deadline(where: str, seconds: float = CONNECT_S) -> Iterator[None]:
    """Ends the process with one line when connecting takes longer than ``seconds``: ``ray.init`` retries
    an unreachable address without end, and nothing has been written yet that could be left behind."""
    def give_up() -> None:
        sys.stderr.write(f"Error: could not connect to Ray at {where} within {seconds:g} s; check the address "
                         "(RAY_ADDRESS, tokenize.ray_address, vocab.ray_address) and that the cluster is up "
                         "(`ray status`)\n")
        sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def pool_size(workers: int, cluster_cpus: float) -> int:
    """Tokenizer actors: ``tokenize.workers``, at most one per CPU of the cluster (one line when capped)."""
    cpus = max(1, int(cluster_cpus))
    if workers > cpus:
        log(f"tokenize.workers is {workers} but the Ray cluster has {cpus} CPU(s): running {cpus} tokenizer actors")
    return min(workers, cpus)


def watched(items: Iterable[T], timeout: float, what: str, setting: str) -> Iterator[T]:
    """``items`` as they come, drawn by a helper thread; a PipelineError when none has come for ``timeout``
    seconds (a Ray cluster with no CPU free for a task, a node lost), instead of waiting forever."""
    box: queue.Queue = queue.Queue(maxsize=2)
    end = object()

    def pump() -> None:
        try:
            for item in items:
                box.put((item, None))
            box.put((end, None))
        except BaseException as exc:  # handed to the stage's thread, which raises it
            box.put((end, exc))

    threading.Thread(target=pump, daemon=True, name=f"textpipe {what}").start()
    while True:
        try:
            item, exc = box.get(timeout=timeout)
        except queue.Empty:
            raise PipelineError(f"{what}: no batch came back from Ray for {timeout:g} s; the cluster may have no CPU "
                                f"free for its tasks or may have lost a node (`ray status` tells); check it, or raise "
                                f"{setting}") from None
        if exc is not None:
            raise exc
        if item is end:
            return
        yield item


class _Tokenize:
    """A Ray Data actor: the tokenizer is built once, then each batch is one chunk."""

    def __init__(self, lang: str, spacy_pipeline: str | None, normalizer: TextNormalizer):
        _init_worker(lang, spacy_pipeline, normalizer)

    def __call__(self, batch: pa.Table) -> pa.Table:
        tokens = _tokenize_chunk(batch.column("text").to_pylist())
        return pa.table({"tokens": tokens, "label": batch.column("label")})


def token_batches(raw_paths: Sequence[Path], cfg: TokenizeConfig, workers: int) -> Iterator[tuple[pa.Array, pa.Array]]:
    """(tokens, label) arrays of the files ``raw_paths``, one after another in row order, tokenized by
    Ray actors; a batch may hold the end of one file and the start of the next."""
    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # absolute paths: the cluster's workers do not share the stage's working folder, only its storage
    ds = ray.data.read_parquet([str(Path(p).resolve()) for p in raw_paths], num_cpus=0).select_columns(["text", "label"])
    normalizer = TextNormalizer(cfg.lowercase, cfg.strip_html, cfg.normalize_whitespace)
    size = pool_size(workers, ray.cluster_resources().get("CPU", 1.0))
    with warnings.catch_warnings():  # SPREAD has no named parameter yet; its dict form is deprecated, still honoured
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(_Tokenize, fn_constructor_args=(cfg.lang, cfg.spacy_pipeline, normalizer),
                            batch_size=cfg.chunk_size, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=size), num_cpus=0,
                            ray_remote_args_fn=lambda: {"scheduling_strategy": "SPREAD"})
    batches = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    for batch in watched(batches, cfg.stall_timeout, "tokenize", "tokenize.stall_timeout"):
        yield (batch.column("tokens").cast(TOKENS_TYPE).combine_chunks(),
               batch.column("label").cast(pa.int64()).combine_chunks())


def _count_batches(batch: dict, path: str) -> pa.Table:
    """A Ray task: partial counts of the token file's record batches whose indices ``batch`` lists."""
    from .vocab import TokenCounter
    from .vocab import count_tokens as count_array

    counter = TokenCounter()
    for i in batch["id"]:
        counter.add(read_arrow_batch(path, int(i), "tokens"))
    return next(counter.totals(), count_array(pa.array([], TOKENS_TYPE)))


def shuffle_partitions(num_batches: int) -> int:
    """Hash partitions of the group-by: Ray's default (``default_hash_shuffle_parallelism``, 200), but no
    more than the token file has record batches. A partition then holds no more distinct tokens than a
    batch has on average, and a small file does not pay for 200 reduce tasks (9 s instead of 15 s for
    600 IMDB reviews on a 2-CPU local Ray)."""
    ctx = _ray().data.DataContext.get_current()
    return max(1, min(num_batches, getattr(ctx, "default_hash_shuffle_parallelism", 200)))


def count_tokens(path: Path, scratch: Path | None = None, stall_timeout: float = 600.0) -> Iterator[pa.Table]:
    """Exact token totals (``token``, ``count``) of a token file in pieces, each distinct token in one
    piece: partial counts per Ray task, merged by a distributed group-by, streamed to the driver a
    block at a time (``scratch`` is unused: the group-by spills to Ray's object store)."""
    ray = _ray()
    num_batches = arrow_batches(path)
    if num_batches == 0:
        return
    ds = ray.data.range(num_batches, override_num_blocks=num_batches)
    ds = ds.map_batches(_count_batches, fn_args=(str(Path(path).resolve()),), batch_size=1, batch_format="numpy")
    totals = ds.groupby("token", num_partitions=shuffle_partitions(num_batches)).sum("count")
    batches = totals.iter_batches(batch_size=None, batch_format="pyarrow")
    for batch in watched(batches, stall_timeout, "vocab", "vocab.stall_timeout"):
        yield batch.rename_columns(["token", "count"])
