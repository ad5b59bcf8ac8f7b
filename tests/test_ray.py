"""The Ray Data engine gives byte-identical token files and vocabulary to the local engine.

A local Ray (2 CPUs, 127.0.0.1 only) is started once for this module and stopped after it.
"""
import pytest

from pipeline import ray_engine
from pipeline.core.config import IngestConfig, TokenizeConfig
from pipeline.core.fileio import arrow_batches
from pipeline.tokenize import tokenize_dataset

from .helpers import shared_dataset

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (the test extra has it)")

OUTPUTS = ("train.arrow", "validation.arrow", "test.arrow", "stats.json", "params.json")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


def same_files(a, b, names):
    for name in names:
        if (a / name).exists() or (b / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_ray_equals_local_on_imdb_rows(local_ray, tmp_path):
    from pipeline.core.config import DatasetConfig
    from pipeline.ingest import ingest

    path = shared_dataset("imdb")
    ingest(DatasetConfig(name="imdb", source="files", path=str(path)).resolve(), tmp_path / "raw", IngestConfig(max_rows=600))
    tokenize_dataset(tmp_path / "raw", tmp_path / "local", TokenizeConfig(workers=2))
    # several chunks per split on two actors: their order must not depend on which actor finishes first
    tokenize_dataset(tmp_path / "raw", tmp_path / "ray", TokenizeConfig(engine="ray", workers=2, chunk_size=90))
    same_files(tmp_path / "local", tmp_path / "ray", OUTPUTS)
    # (the vocabulary on Ray: the demo's in the stage-started session below, and counts over many
    # record batches; one group-by each, ~9 s of Ray's shuffle start-up)


def test_counts_of_many_record_batches_merge_across_partitions(local_ray, tmp_path):
    """One partial count per record batch, one hash partition per batch (at most Ray's default of
    200): every distinct token's total comes back exactly once, whichever partitions it spans."""
    import collections

    import pyarrow as pa

    from pipeline.tokenize import TOKENS_TYPE

    docs = [[f"w{(i * 7 + j) % 23}" for j in range(i % 5)] for i in range(60)]
    path = tmp_path / "train.arrow"
    schema = pa.schema([("tokens", TOKENS_TYPE)])
    with pa.ipc.new_file(str(path), schema) as writer:
        for start in range(0, 60, 10):
            writer.write_batch(pa.record_batch([pa.array(docs[start:start + 10], TOKENS_TYPE)], schema=schema))
    assert arrow_batches(path) == 6 and ray_engine.shuffle_partitions(6) == 6
    assert ray_engine.shuffle_partitions(10_000) == 200
    pieces = list(ray_engine.count_tokens(path))
    counted = [(t, c) for piece in pieces for t, c in zip(piece.column("token").to_pylist(), piece.column("count").to_pylist())]
    assert len(counted) == len({t for t, _ in counted})  # no token in two pieces
    assert dict(counted) == collections.Counter(t for doc in docs for t in doc)


def test_ray_engine_without_ray_is_one_line(monkeypatch, tmp_path, demo):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from pipeline.core.errors import PipelineError

    with pytest.raises(PipelineError, match=r"^engine 'ray' needs Ray: pip install -e '.\[ray\]'"):
        tokenize_dataset(demo / "raw", tmp_path / "t", TokenizeConfig(engine="ray"))
    assert not (tmp_path / "t").exists()


def test_one_actor_on_the_local_ray_the_stage_starts_equals_local_on_the_demo(demo, tmp_path):
    """`engine: ray` for tokenize and vocab with one worker and no Ray running, as `dvc repro` runs it:
    a local Ray started as the tokenize stage starts its own, `ray_session(None, workers)` (this case
    once hung forever: the actor held the only CPU slot Ray Data's file listing needed), and the token
    files and vocabulary equal the local engine's. Both run in that one session, which saves starting a
    second Ray; the README walk-through runs the stages that each start their own (test_readme.py)."""
    import os
    import subprocess
    import sys

    code = ("from pipeline import ray_engine\nfrom pipeline.core.config import TokenizeConfig, VocabConfig\n"
            "from pipeline.tokenize import tokenize_dataset\nfrom pipeline.vocab import vocab_stage\n"
            "with ray_engine.ray_session(None, 1):\n"
            f"    stats, timings = tokenize_dataset({str(demo / 'raw')!r}, {str(tmp_path / 'tokens')!r}, "
            "TokenizeConfig(engine='ray', workers=1, chunk_size=300))\n"
            "    assert timings['engine'] == 'ray' and stats['splits']['train']['docs'] == 2160\n"
            "    assert ray_engine._ray().cluster_resources()['CPU'] == 2  # one for the actor, one for the listing\n"
            f"    vocab_stage({str(tmp_path / 'tokens')!r}, {str(tmp_path / 'vocab')!r}, VocabConfig(engine='ray'), "
            "count=ray_engine.count_tokens)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # stdin closed: Ray's reaper process reads its stdin, which must not be the test runner's own
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300, env=env,
                   stdin=subprocess.DEVNULL)
    same_files(demo / "tokens", tmp_path / "tokens", OUTPUTS)
    same_files(demo / "vocab", tmp_path / "vocab", ("vocab.tsv", "metrics.json", "params.json"))
