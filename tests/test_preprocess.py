"""Tokenize -> vocab -> bucket -> shard on the demo corpus and on the real datasets."""
import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import BucketConfig, TokenizeConfig, TrainConfig
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import read_arrow, sha256_file
from pipeline.sampler import LengthBucketSampler
from pipeline.shards import ShardReader
from pipeline.tokenize import ParallelTokenizer, RowRuns, TextNormalizer, local_token_batches, tokenize_dataset
from pipeline.vocab import Vocabulary

from .helpers import REPO, run_all, shared_dataset

DEMO_TRAIN = REPO / "pipeline" / "demo_data" / "train.jsonl"


def every_char() -> list[str]:
    return list(map(chr, range(sys.maxunicode + 1)))


def whitespace_chars() -> list[str]:
    """Every character Python's str.split() and spaCy's is_space treat as whitespace (29)."""
    return [c for c in every_char() if c.isspace()]


def test_normalizer():
    n = TextNormalizer()
    assert n("Great<br /><br />FILM!\n\t ok") == "great film! ok"
    assert TextNormalizer(lowercase=False, strip_html=False)("A<b>B</b>  c") == "A<b>B</b> c"


def test_whitespace_fast_path_is_str_split_exactly():
    """The fast path returns a text unchanged only where " ".join(text.split()) would: checked on
    every whitespace character Python knows (ASCII and not) at the start, middle and end, alone and
    doubled, and on random strings over an alphabet of words, spaces and whitespace characters."""
    import random

    from pipeline.tokenize import _collapse_whitespace

    spaces = whitespace_chars()
    assert len(spaces) == 29 and "\x1c" in spaces and "\u3000" in spaces
    texts = ["", " ", "a", "a b", "é b", "a  b"]
    for w in spaces:
        for word in ("ab", "é"):
            texts += [w + word, word + w, f"x{w}y", f"x {w}y", f"x{w}{w}y", w, w * 2, f"{word} {w}"]
    rng = random.Random(0)
    alphabet = ["ab", "é", "Z", " ", "  ", "\t", "\n", "\r\n", "\xa0", "\u2003", "\x1f", "\x85"]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(5000)]
    for text in texts:
        assert _collapse_whitespace(text) == " ".join(text.split()), repr(text)
    unchanged = "a plain ascii text, already normalised."
    assert _collapse_whitespace(unchanged) is unchanged  # the fast path: no split, no copy


def test_tokens_are_spacys_with_whitespace_tokens_dropped(monkeypatch):
    """What a worker sends back is spaCy's tokens of the normalised text, whitespace tokens dropped,
    under each whitespace setting. With normalize_whitespace the worker does not look for whitespace
    tokens: the normaliser leaves no run of whitespace for spaCy to make one of, and no character
    lowercases to whitespace (checked on every code point)."""
    import spacy

    from pipeline import tokenize

    assert [c for c in every_char() if not c.isspace() and any(x.isspace() for x in c.lower())] == []
    spaces = whitespace_chars()
    texts = ["", " ", "a", "Hello  World!\n\tok", "<br />Don't, do it<br />!!", "x" + "".join(spaces) + "y"]
    texts += [f"{w}A{w}b {w}{w}c{w}" for w in spaces]
    texts += [json.loads(line)["text"] for line in DEMO_TRAIN.read_text().splitlines()[:300]]
    nlp = spacy.blank("en")
    monkeypatch.setattr(tokenize, "_WORKER", {})
    for normalizer in (TextNormalizer(), TextNormalizer(normalize_whitespace=False),
                       TextNormalizer(lowercase=False, strip_html=False)):
        tokenize._init_worker("en", None, normalizer)
        want = [[t.text for t in nlp(normalizer(text)) if not t.is_space] for text in texts]
        assert tokenize._tokenize_chunk(texts).to_pylist() == want, normalizer
        assert [t.lower() for t in want[6]] == ["a", "b", "c"], normalizer  # the spaces are gone
    assert want[3] == ["Hello", "World", "!", "ok"]


@pytest.mark.parametrize("normalizer, preloaded", [(TextNormalizer(), 0), (TextNormalizer(normalize_whitespace=False), 10_000)],
                         ids=["word-memo-blank-vocab", "spacy-docs-pipeline-vocab"])
def test_worker_starts_a_new_tokenizer_when_its_vocab_is_full(monkeypatch, normalizer, preloaded):
    """spaCy's vocab keeps every string it has seen. A worker whose vocab holds more than MAX_STRINGS
    strings besides those it started with (a trained pipeline's vocab comes with its own: here
    ``preloaded`` of them) starts the next chunk with a new tokenizer (and a new word memo), so its
    memory does not grow with the number of distinct words; the tokens stay spaCy's across restarts."""
    import random
    import string

    import spacy

    from pipeline import tokenize

    load = tokenize.load_tokenizer

    def load_tokenizer(*args):
        tokenizer = load(*args)
        for i in range(preloaded):
            tokenizer.vocab.strings.add(f"pipeline-string-{i}")
        return tokenizer

    monkeypatch.setattr(tokenize, "load_tokenizer", load_tokenizer)
    nlp, rng = spacy.blank("en"), random.Random(0)
    blank = len(nlp.vocab.strings) + preloaded
    monkeypatch.setattr(tokenize, "_WORKER", {})
    monkeypatch.setattr(tokenize, "MAX_STRINGS", 2_500)
    tokenize._init_worker("en", None, normalizer)
    tokenizers, added = [], []
    for _ in range(6):  # 800 new words a chunk, some with punctuation glued on
        texts = [" ".join("".join(rng.choices(string.ascii_lowercase, k=7)) + rng.choice(["", ",", "!", "'s"])
                          for _ in range(20)) for _ in range(40)]
        want = [[t.text for t in nlp(normalizer(text)) if not t.is_space] for text in texts]
        assert tokenize._tokenize_chunk(texts).to_pylist() == want
        tokenizer, memo = tokenize._WORKER["tokenizer"], tokenize._WORKER["memo"]
        assert memo.tokenizer is tokenizer if normalizer.normalize_whitespace else memo is None
        if not tokenizers or tokenizers[-1] is not tokenizer:
            tokenizers.append(tokenizer)
        added.append(len(tokenizer.vocab.strings) - blank)
    # a chunk adds ~1,600 strings (each word, its last three letters, ...): a tokenizer's second chunk
    # takes its vocab past the cap, and the next chunk starts a new one, whose vocab holds only its own
    assert len(tokenizers) == 3
    assert all(1_000 < n < 2_500 for n in added[0::2]) and all(2_500 < n < 3_500 for n in added[1::2]), added


def _batches(*sizes):
    """(tokens, label) batches of consecutive row numbers: tokens [["r0"], ["r1"], ...], labels 0, 1, ..."""
    import pyarrow as pa

    start = 0
    for n in sizes:
        rows = range(start, start + n)
        yield pa.array([[f"r{i}"] for i in rows]), pa.array(list(rows), pa.int64())
        start += n


def test_row_runs_cut_one_stream_into_splits_exactly():
    runs = RowRuns(_batches(4, 6, 1))  # 11 rows; runs of 3, 0, 6, 2: batches straddle runs 1/3 and 3/4
    got = []
    for n in (3, 0, 6, 2):
        parts = list(runs.take(n))
        got.append(([len(t) for t, _ in parts], [x for _, lab in parts for x in lab.to_pylist()],
                    [x[0] for t, _ in parts for x in t.to_pylist()]))
    assert got == [([3], [0, 1, 2], ["r0", "r1", "r2"]),
                   ([], [], []),
                   ([1, 5], [3, 4, 5, 6, 7, 8], ["r3", "r4", "r5", "r6", "r7", "r8"]),
                   ([1, 1], [9, 10], ["r9", "r10"])]
    assert runs.rest() == 0
    short = RowRuns(_batches(2, 2))
    assert [len(t) for t, _ in short.take(5)] == [2, 2] and list(short.take(1)) == []
    long = RowRuns(_batches(4, 3))
    assert [len(t) for t, _ in long.take(2)] == [2] and long.rest() == 5


def test_the_last_rows_go_out_in_quarter_chunks_in_order(tmp_path):
    """Splits of 10, 7 and 5 rows, 2 workers, chunks of 4: once 8 rows (workers x chunk) or fewer are
    left, chunks of 1 (a quarter), so neither worker waits a whole chunk for the other at the end."""
    import pyarrow as pa

    paths, row = [], 0
    for name, n in (("train", 10), ("validation", 7), ("test", 5)):
        paths.append(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table({"text": [f"Row {i} Text" for i in range(row, row + n)],
                                 "label": pa.array(range(row, row + n), pa.int64())}), paths[-1])
        row += n
    with ParallelTokenizer(workers=2, chunk_size=4) as tok:
        out = list(local_token_batches(tok, paths))
    assert [len(t) for t, _ in out] == [4, 4, 2, 4, 1, 1, 1, 1, 1, 1, 1, 1]
    assert [lab for _, labels in out for lab in labels.to_pylist()] == list(range(22))
    assert [doc for tokens, _ in out for doc in tokens.to_pylist()] == [["row", str(i), "text"] for i in range(22)]


def test_arrow_writer_bytes_depend_on_the_rows_only(tmp_path, monkeypatch):
    """The same rows arriving whole, in pieces, or as slices of bigger arrays (as RowRuns cuts them)
    give the same file bytes: a sliced list array must not leak the cut-off rows' strings."""
    import pyarrow as pa

    from pipeline.core import fileio

    monkeypatch.setattr(fileio, "ROWS_PER_BATCH", 4)
    schema = pa.schema([("tokens", pa.list_(pa.string())), ("label", pa.int64())])
    rows = [[f"w{i}"] * (i % 3) for i in range(10)]
    whole = pa.RecordBatch.from_arrays([pa.array(rows), pa.array(range(10))], schema=schema)
    bigger = pa.RecordBatch.from_arrays([pa.array([["x" * 50]] + rows + [["y" * 50]]), pa.array(range(-1, 11))],
                                        schema=schema)
    ways = {"whole": [whole], "pieces": [whole.slice(0, 3), whole.slice(3, 5), whole.slice(8)],
            "slices": [bigger.slice(1, 10)], "slice_pieces": [bigger.slice(1, 1), bigger.slice(2, 9)]}
    for name, batches in ways.items():
        with fileio.ArrowWriter(tmp_path / f"{name}.arrow", schema) as writer:
            for b in batches:
                writer.write(b)
    want = (tmp_path / "whole.arrow").read_bytes()
    assert read_arrow(tmp_path / "whole.arrow").column("tokens").to_pylist() == rows
    assert [n for n in ways if (tmp_path / f"{n}.arrow").read_bytes() != want] == []
    # write_arrow (whole tables: the shard files) goes through the same writer
    fileio.write_arrow(pa.Table.from_batches([bigger]).slice(1, 10), tmp_path / "table_slice.arrow")
    assert (tmp_path / "table_slice.arrow").read_bytes() == want


def test_the_tokenizer_loads_spacy_without_torch():
    """Tokenizer processes skip thinc's torch import (most of spaCy's import time); torch still imports
    afterwards, and a process that has torch already keeps it."""
    import subprocess
    import sys

    code = ("import sys\nfrom pipeline.tokenize import load_tokenizer\n"
            "tok = load_tokenizer()\nprint([t.text for t in tok('it\\'s a great film!')])\n"
            "print('torch' in sys.modules)\nimport torch, thinc.compat\nprint(torch.tensor([2]).item(), thinc.compat.has_torch)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.splitlines() == ["['it', \"'s\", 'a', 'great', 'film', '!']", "False", "2 False"]
    code = "import torch\nfrom pipeline.tokenize import load_tokenizer\nload_tokenizer()\nimport thinc.compat\nprint(thinc.compat.has_torch)\n"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=120).stdout == "True\n"


def test_demo_pipeline_contents_round_trip(tmp_path):
    manifest = run_all(tmp_path, tokenize={"workers": 2, "chunk_size": 300}, shard={"shard_size_mb": 0.01})
    raw = pq.read_table(tmp_path / "raw" / "train.parquet")
    tokens = read_arrow(tmp_path / "tokens" / "train.arrow")
    assert tokens.num_rows == raw.num_rows
    # one process with another chunk size writes the same bytes: workers and chunk_size are not content
    stats, timings = tokenize_dataset(tmp_path / "raw", tmp_path / "tokens1", TokenizeConfig(workers=1, chunk_size=2000))
    for name in ("train.arrow", "validation.arrow", "test.arrow", "stats.json", "params.json"):
        assert (tmp_path / "tokens1" / name).read_bytes() == (tmp_path / "tokens" / name).read_bytes(), name
    assert stats["splits"]["train"]["tokens"] == sum(tokens.column("length").to_pylist())
    assert timings["workers"] == 1 and "seconds" not in json.dumps(stats)

    vocab = Vocabulary.load(tmp_path / "vocab" / "vocab.tsv")
    reader = ShardReader(tmp_path / "shards", vocab_path=tmp_path / "vocab" / "vocab.tsv")
    assert manifest["vocab"]["sha256"] == sha256_file(tmp_path / "vocab" / "vocab.tsv")
    shards = manifest["splits"]["train"]["shards"]
    bounds = manifest["boundaries"]
    assert len(shards) > 2 * len(bounds), "small shards: each bucket spans several"
    # shards in bucket order; each holds one bucket's rows, sorted by length, ties in input order
    assert [s["bucket"] for s in shards] == sorted(s["bucket"] for s in shards)
    all_tokens = tokens.column("tokens").to_pylist()
    assert max(len(t) for t in all_tokens) < BucketConfig().max_len  # so no row below is cut
    seen = []
    for s in shards:
        part = read_arrow(tmp_path / "shards" / s["file"])
        assert sha256_file(tmp_path / "shards" / s["file"]) == s["sha256"]
        lengths, rows = part.column("length").to_pylist(), part.column("row").to_pylist()
        assert lengths == sorted(lengths) and set(part.column("bucket").to_pylist()) == {s["bucket"]}
        assert (s["rows"], s["min_length"], s["max_length"]) == (len(rows), lengths[0], lengths[-1])
        assert all(rows[i] < rows[i + 1] for i in range(len(rows) - 1) if lengths[i] == lengths[i + 1])
        lo = bounds[s["bucket"] - 1] if s["bucket"] else 0
        assert lo < lengths[0] and lengths[-1] <= bounds[s["bucket"]]
        # every row holds exactly the encoded tokens and the label of its raw row
        # (cutting long docs is test_max_len_cuts_head_and_tail_in_the_pipeline's)
        assert part.column("ids").to_pylist() == [vocab.encode(all_tokens[r]) or [1] for r in rows]
        assert part.column("label").to_pylist() == [raw.column("label")[r].as_py() for r in rows]
        seen += rows
    assert sorted(seen) == list(range(raw.num_rows))
    table = reader.table("train")
    split = reader.split("train")
    assert [r.tolist() for r in split.rows(range(len(split)))] == table.column("ids").to_pylist()
    assert split.raw_rows_of(np.arange(len(split))).tolist() == seen
    assert reader.labels == ["neg", "pos"] and set(reader.splits) == {"train", "validation", "test"}


def test_workers_0_tokenizes_small_splits_in_one_process(demo, tmp_path, monkeypatch):
    """`workers: 0` starts a pool only for 1 MiB of text or more, summed over the splits' Parquet
    footers; an explicit count, and Ray, are taken as given."""
    import pyarrow as pa

    from pipeline import tokenize

    monkeypatch.setattr(tokenize.os, "cpu_count", lambda: 2)
    raw = [demo / "raw" / f"{split}.parquet" for split in ("train", "validation", "test")]
    assert tokenize.auto_workers(raw) == 1 and tokenize.auto_workers(raw, "ray") == 2
    big = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": [f"{i:05d}" + "x" * 1000 for i in range(1100)], "label": [0] * 1100}), big, compression="zstd")
    assert big.stat().st_size < 100_000  # uncompressed size counts, not the file's
    assert tokenize.auto_workers([big]) == 2 and tokenize.auto_workers([big, *raw]) == 2
    _, timings = tokenize_dataset(demo / "raw", tmp_path / "tokens", TokenizeConfig(workers=0))
    assert timings["workers"] == 1
    assert (tmp_path / "tokens" / "train.arrow").read_bytes() == (demo / "tokens" / "train.arrow").read_bytes()


def test_max_len_cuts_head_and_tail_in_the_pipeline(demo, tmp_path):
    from pipeline.buckets import bucket_stage

    stats = bucket_stage(demo / "tokens", demo / "vocab" / "vocab.tsv", tmp_path / "ids", BucketConfig(max_len=6))
    tokens = read_arrow(demo / "tokens" / "train.arrow").column("tokens").to_pylist()
    vocab = Vocabulary.load(demo / "vocab" / "vocab.tsv")
    ids = read_arrow(tmp_path / "ids" / "train.arrow")
    # keep_head 0.25 of 6 -> the first token and the last five
    assert ids.column("ids").to_pylist() == [vocab.encode(t[:1] + t[-5:] if len(t) > 6 else t) for t in tokens]
    assert ids.column("length").to_pylist() == [min(len(t), 6) for t in tokens]
    head_only = bucket_stage(demo / "tokens", demo / "vocab" / "vocab.tsv", tmp_path / "ids1",
                             BucketConfig(max_len=6, keep_head=1.0))
    assert read_arrow(tmp_path / "ids1" / "train.arrow").column("ids").to_pylist() == [vocab.encode(t[:6]) for t in tokens]
    assert head_only["splits"] == stats["splits"]
    assert stats["splits"]["train"]["truncated"] == sum(len(t) > 6 for t in tokens) > 0
    assert stats["boundaries"][-1] == 6


def test_reader_refuses_corrupt_shard_and_wrong_vocab(demo, tmp_path):
    import shutil

    shutil.copytree(demo / "shards", tmp_path / "shards")
    other = tmp_path / "other.tsv"
    other.write_text("<pad>\t0\n<unk>\t0\nx\t1\n")
    with pytest.raises(PipelineError, match="is not the one the shards were built with"):
        ShardReader(tmp_path / "shards", vocab_path=other)
    shard = tmp_path / "shards" / "train-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match="does not match its checksum"):
        ShardReader(tmp_path / "shards")


def test_runs_are_byte_identical_whatever_the_workers(demo, tmp_path):
    run_all(tmp_path / "b", tokenize={"workers": 2, "chunk_size": 500})
    a_files = sorted(p.relative_to(demo) for p in demo.rglob("*") if p.is_file())
    b_files = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert a_files == b_files and len(a_files) >= 20
    for rel in a_files:
        assert (demo / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_vocab_metrics_and_padding_waste_on_demo(demo, tmp_path):
    from pipeline.core.config import VocabConfig
    from pipeline.vocab import vocab_stage

    metrics = vocab_stage(demo / "tokens", tmp_path / "vocab", VocabConfig(max_size=50))
    assert metrics["size"] == 50
    vocab = Vocabulary.load(tmp_path / "vocab" / "vocab.tsv")
    assert len(vocab) == 50 and vocab.counts[2:] == sorted(vocab.counts[2:], reverse=True)
    for split, m in metrics["splits"].items():
        flat = [t for doc in read_arrow(demo / "tokens" / f"{split}.arrow").column("tokens").to_pylist() for t in doc]
        unknown = sum(t not in vocab.stoi for t in flat)
        assert (m["tokens"], m["unk_tokens"]) == (len(flat), unknown) and unknown > 0
        assert m["unk_rate"] == round(unknown / len(flat), 6) and m["coverage"] == round(1 - m["unk_rate"], 6)
    ids = json.loads((demo / "ids" / "metrics.json").read_text())
    for m in ids["splits"].values():
        assert m["padding_waste_bucketed"] < m["padding_waste_random"]


@pytest.mark.slow
@pytest.mark.parametrize("name,extra,max_rows,train_rows", [
    ("imdb", {}, 4000, 4000),
    # all of SST-2 train: on a few thousand phrases each 128-row batch spans more lengths (6.5% padding)
    ("sst2", {"text_column": "text"}, 0, 67349),
])
def test_real_datasets_end_to_end(tmp_path, name, extra, max_rows, train_rows):
    path = shared_dataset(name)
    manifest = run_all(tmp_path, dataset={"name": name, "source": "files", "path": str(path), **extra}, max_rows=max_rows)
    rows = manifest["splits"]["train"]["rows"]
    assert rows == train_rows
    assert sum(s["rows"] for s in manifest["splits"]["train"]["shards"]) == rows
    metrics = json.loads((tmp_path / "vocab" / "metrics.json").read_text())
    assert 0 < metrics["splits"]["validation"]["unk_rate"] < 0.2
    reader = ShardReader(tmp_path / "shards", vocab_path=tmp_path / "vocab" / "vocab.tsv")
    data = reader.split("train")
    assert len(data) == rows and (np.diff(data.lengths) >= 0).all()
    # the shipped batching (token budget, row cap, length noise) pads long and short texts alike by < 5%
    cfg = TrainConfig()
    batches = LengthBucketSampler(data.lengths, data.buckets, cfg.rows_per_batch(rows), cfg.max_tokens,
                                  cfg.padding_noise, seed=cfg.seed).batches()
    padded = sum(len(b) * int(data.lengths[b].max()) for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(rows))
    assert all(len(b) * data.lengths[b].max() <= cfg.max_tokens or len(b) == 1 for b in batches)
    assert 0 < 1 - data.lengths.sum() / padded < 0.05
    if name == "imdb":
        tokens = read_arrow(tmp_path / "tokens" / "train.arrow").column("tokens").to_pylist()
        assert not any("<br" in t for doc in tokens[:500] for t in doc), "HTML line breaks must be stripped"


def test_iter_arrow_reads_only_the_columns_asked_for_in_their_order(tmp_path):
    import psutil
    import pyarrow as pa

    from pipeline.core.fileio import ROWS_PER_BATCH, iter_arrow, write_arrow

    rows = 3 * ROWS_PER_BATCH + 5
    table = pa.table({"text": pa.array(["x" * 300] * rows), "length": np.arange(rows, dtype=np.int32),
                      "label": np.arange(rows) % 3})
    write_arrow(table, tmp_path / "t.arrow")
    read_before = psutil.Process().io_counters().read_chars
    subset = list(iter_arrow(tmp_path / "t.arrow", ["label", "length"]))
    read = psutil.Process().io_counters().read_chars - read_before
    assert [len(b) for b in subset] == [ROWS_PER_BATCH] * 3 + [5]
    assert pa.Table.from_batches(subset).equals(table.select(["label", "length"]))
    assert read < (tmp_path / "t.arrow").stat().st_size / 10  # the text column (~90% of the file) stays on disk
    del subset
    allocated_before = pa.total_allocated_bytes()
    batches = list(iter_arrow(tmp_path / "t.arrow"))
    # read into Arrow's memory pool, not memory-mapped: mapped pages once read stay in the process's PSS
    assert pa.total_allocated_bytes() - allocated_before >= sum(b.nbytes for b in batches)
    assert pa.Table.from_batches(batches).equals(table)


@pytest.mark.parametrize("row_group_rows", [1000, None], ids=["many-row-groups", "one-row-group"])
def test_iter_parquet_holds_a_few_pages_not_the_file(tmp_path, row_group_rows):
    import pyarrow as pa

    from pipeline.core.fileio import iter_parquet

    rows = 200_000  # of 100 random letters: a 21 MB file, as text compresses little
    letters = np.random.default_rng(0).integers(97, 123, (rows, 100), dtype=np.uint8)
    text = pa.array(letters.view("S100").ravel()).cast(pa.string())
    pq.write_table(pa.table({"text": text, "label": np.arange(rows)}), tmp_path / "t.parquet", row_group_size=row_group_rows)
    size = (tmp_path / "t.parquet").stat().st_size
    before, peak, seen = pa.total_allocated_bytes(), 0, []
    for batch in iter_parquet(tmp_path / "t.parquet", 300, ["text", "label"]):
        peak = max(peak, pa.total_allocated_bytes() - before)
        seen.append(batch.column("label").to_numpy())
    assert np.concatenate(seen).tolist() == list(range(rows))
    # pyarrow's pre_buffer would hold every row group read so far (the whole file by the end), and
    # an unbuffered read each column chunk whole (the whole file when it is one row group)
    assert peak < size / 2, (peak, size)
