"""Tokenize -> vocab -> bucket -> shard on the demo corpus and on the real datasets."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.buckets import BUCKET_DEFAULTS, bucket_stage
from pipeline.datasets import DATASET_DEFAULTS, ingest, resolve_dataset
from pipeline.errors import PipelineError
from pipeline.shards import SHARD_DEFAULTS, ShardReader, shard_stage
from pipeline.fileio import read_arrow, sha256_file
from pipeline.tokenize import TOKENIZE_DEFAULTS, TextNormalizer, tokenize_dataset
from pipeline.vocab import VOCAB_DEFAULTS, Vocabulary, vocab_stage

from .conftest import shared_dataset


def run_all(root, dataset=None, tokenize=None, vocab=None, bucket=None, shard=None, max_rows=0):
    cfg = resolve_dataset({**DATASET_DEFAULTS, **(dataset or {})})
    ingest(cfg, root / "raw", max_rows=max_rows)
    tokenize_dataset(root / "raw", root / "tokens", {**TOKENIZE_DEFAULTS, **(tokenize or {})})
    vocab_stage(root / "tokens", root / "vocab", {**VOCAB_DEFAULTS, **(vocab or {})})
    bucket_stage(root / "tokens", root / "vocab" / "vocab.tsv", root / "ids", {**BUCKET_DEFAULTS, **(bucket or {})})
    return shard_stage(root / "ids", root / "vocab" / "vocab.tsv", root / "shards", {**SHARD_DEFAULTS, **(shard or {})})


def test_normalizer():
    n = TextNormalizer()
    assert n("Great<br /><br />FILM!\n\t ok") == "great film! ok"
    assert TextNormalizer(lowercase=False, strip_html=False)("A<b>B</b>  c") == "A<b>B</b> c"


def test_demo_pipeline_contents_round_trip(tmp_path):
    manifest = run_all(tmp_path, tokenize={"workers": 2, "chunk_size": 300}, shard={"shard_size_mb": 0.05})
    raw = pq.read_table(tmp_path / "raw" / "train.parquet")
    tokens = read_arrow(tmp_path / "tokens" / "train.arrow")
    assert tokens.num_rows == raw.num_rows
    # parallel tokenization equals a single process, row for row
    single = tokenize_dataset(tmp_path / "raw", tmp_path / "tokens1", {**TOKENIZE_DEFAULTS, "workers": 1})
    assert read_arrow(tmp_path / "tokens1" / "train.arrow").equals(tokens)
    stats = json.loads((tmp_path / "tokens" / "stats.json").read_text())
    assert stats["splits"]["train"]["tokens"] == single["splits"]["train"]["tokens"] == sum(tokens.column("length").to_pylist())

    vocab = Vocabulary.load(tmp_path / "vocab" / "vocab.tsv")
    reader = ShardReader(tmp_path / "shards", vocab_path=tmp_path / "vocab" / "vocab.tsv")
    assert manifest["vocab"]["sha256"] == sha256_file(tmp_path / "vocab" / "vocab.tsv")
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) > 1, "small shard size must give several shards"
    for s in shards:
        assert sha256_file(tmp_path / "shards" / s["file"]) == s["sha256"]

    # shards hold exactly the encoded input, sorted by length (ties in input order)
    table = reader.table("train")
    lengths = table.column("length").to_pylist()
    assert lengths == sorted(lengths) and table.num_rows == raw.num_rows
    order = np.argsort(tokens.column("length").to_numpy(), kind="stable")
    expected = [vocab.encode(tokens.column("tokens")[int(i)].as_py()[:400]) for i in order]
    assert table.column("ids").to_pylist() == expected
    assert table.column("label").to_pylist() == [raw.column("label")[int(i)].as_py() for i in order]
    split = reader.split("train")
    assert [r.tolist() for r in split.rows(range(len(split)))] == expected
    assert reader.labels == ["neg", "pos"] and set(reader.splits) == {"train", "validation", "test"}


def test_reader_refuses_corrupt_shard_and_wrong_vocab(tmp_path):
    run_all(tmp_path, tokenize={"workers": 1})
    other = tmp_path / "other.tsv"
    other.write_text("<pad>\t0\n<unk>\t0\nx\t1\n")
    with pytest.raises(PipelineError, match="is not the one the shards were built with"):
        ShardReader(tmp_path / "shards", vocab_path=other)
    shard = tmp_path / "shards" / "train-00000.arrow"
    shard.chmod(0o644)
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match="does not match its checksum"):
        ShardReader(tmp_path / "shards")


def test_two_runs_are_byte_identical(tmp_path):
    a = run_all(tmp_path / "a", tokenize={"workers": 2, "chunk_size": 500})
    b = run_all(tmp_path / "b", tokenize={"workers": 2, "chunk_size": 500})
    assert a == b
    assert (tmp_path / "a/vocab/vocab.tsv").read_bytes() == (tmp_path / "b/vocab/vocab.tsv").read_bytes()
    for split in a["splits"].values():
        for s in split["shards"]:
            assert (tmp_path / "a/shards" / s["file"]).read_bytes() == (tmp_path / "b/shards" / s["file"]).read_bytes()


def test_vocab_metrics_and_padding_waste_on_demo(tmp_path):
    run_all(tmp_path, tokenize={"workers": 1}, vocab={"max_size": 50})
    metrics = json.loads((tmp_path / "vocab" / "metrics.json").read_text())
    assert metrics["size"] == 50
    vocab = Vocabulary.load(tmp_path / "vocab" / "vocab.tsv")
    assert len(vocab) == 50 and vocab.counts[2:] == sorted(vocab.counts[2:], reverse=True)
    for split, m in metrics["splits"].items():
        assert 0 < m["unk_rate"] < 1 and m["coverage"] == round(1 - m["unk_rate"], 6)
    ids = json.loads((tmp_path / "ids" / "metrics.json").read_text())
    for m in ids["splits"].values():
        assert m["padding_waste_bucketed"] < m["padding_waste_random"]


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [("imdb", {}), ("sst2", {"text_column": "text"})])
def test_real_datasets_end_to_end(tmp_path, name, extra):
    path = shared_dataset(name)
    manifest = run_all(tmp_path, dataset={"name": name, "source": "files", "path": str(path), **extra}, max_rows=4000)
    rows = manifest["splits"]["train"]["rows"]
    assert rows == 4000
    assert sum(s["rows"] for s in manifest["splits"]["train"]["shards"]) == rows
    metrics = json.loads((tmp_path / "vocab" / "metrics.json").read_text())
    assert 0 < metrics["splits"]["validation"]["unk_rate"] < 0.2
    reader = ShardReader(tmp_path / "shards", vocab_path=tmp_path / "vocab" / "vocab.tsv")
    data = reader.split("train")
    assert len(data) == rows and (np.diff(data.lengths) >= 0).all()
    if name == "imdb":
        tokens = read_arrow(tmp_path / "tokens" / "train.arrow").column("tokens").to_pylist()
        assert not any("<br" in t for doc in tokens[:500] for t in doc), "HTML line breaks must be stripped"
