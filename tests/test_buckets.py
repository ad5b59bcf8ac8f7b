import numpy as np
import pyarrow as pa
import pytest

from pipeline.buckets import (LengthStats, assign_buckets, bucket_boundaries, bucket_rows, encode_split, kept_positions,
                              random_padding_waste, sorted_padding_waste, truncate_docs)
from pipeline.core.errors import PipelineError
from pipeline.vocab import UNK_ID, Vocabulary


def stats_of(lengths, seed=0):
    stats = LengthStats(seed)
    stats.add(np.asarray(lengths))
    return stats


def test_quantile_boundaries_split_rows_evenly():
    lengths = np.arange(1, 101)
    bounds = bucket_boundaries(stats_of(lengths), 4)
    assert bounds == [25, 50, 75, 100]
    assert np.bincount(assign_buckets(lengths, bounds)).tolist() == [25, 25, 25, 25]
    assert bucket_rows(stats_of(lengths), bounds) == [25, 25, 25, 25]


def test_explicit_boundaries_get_a_last_bucket_for_longer_rows():
    lengths = np.array([1, 5, 10, 11, 30])
    bounds = bucket_boundaries(stats_of(lengths), [5, 10])
    assert bounds == [5, 10, 30]
    assert assign_buckets(lengths, bounds).tolist() == [0, 0, 1, 2, 2]
    assert bucket_rows(stats_of(lengths), bounds) == [2, 1, 2]
    from pipeline.core.config import BucketConfig

    with pytest.raises(PipelineError, match=r"^bucket.boundaries must be a strictly increasing list of positive lengths, got \[10, 5\]$"):
        BucketConfig.from_block({"boundaries": [10, 5]})
    with pytest.raises(PipelineError, match="^bucket.boundaries must be a number of buckets >= 1"):
        BucketConfig.from_block({"boundaries": 0})


def test_padding_waste_exact_values():
    lengths = np.array([3, 1, 3, 1, 2])
    # sorted batches of 2: [1,1] [2,3] [3] -> 2 + 6 + 3 = 11 slots, 10 real
    assert sorted_padding_waste(stats_of(lengths), 2) == round(1 / 11, 6)
    assert sorted_padding_waste(stats_of(lengths[:4]), 2) == 0.0  # [1,1] [3,3]
    # one batch of 4 -> padded to 3: 12 slots, 8 real
    assert random_padding_waste(lengths[:4], 4) == round(4 / 12, 6)


def _per_row(lengths, batch_size, n_buckets, seed):
    """The figures as computed before LengthStats, on every row held whole."""
    bounds = [int(q) for q in np.quantile(lengths, np.arange(1, n_buckets + 1) / n_buckets, method="inverted_cdf")]
    bounds = [b for b in sorted(set(bounds)) if b < lengths.max()] + [int(lengths.max())]
    buckets = assign_buckets(lengths, bounds)
    order = np.lexsort((lengths, buckets))
    padded = sum(int(lengths[order[s:s + batch_size]].max()) * len(order[s:s + batch_size])
                 for s in range(0, len(order), batch_size))
    return bounds, np.bincount(buckets, minlength=len(bounds)).tolist(), round((padded - lengths.sum()) / padded, 6)


@pytest.mark.parametrize("rows,batch_size,n_buckets", [(1, 32, 8), (31, 32, 8), (32, 32, 8), (1000, 7, 3),
                                                        (4097, 32, 8), (25_000, 128, 10)])
def test_length_histogram_gives_the_per_row_figures_exactly(rows, batch_size, n_buckets):
    rng = np.random.default_rng(rows)
    lengths = np.maximum(rng.lognormal(4, 1, rows).astype(np.int64), 1)
    stats = LengthStats(seed=5)
    for part in np.array_split(lengths, 7):  # in batches, as the stage reads them
        stats.add(part)
    bounds, rows_per_bucket, sorted_waste = _per_row(lengths, batch_size, n_buckets, 5)
    assert bucket_boundaries(stats, n_buckets) == bounds
    assert bucket_rows(stats, bounds) == rows_per_bucket
    assert sorted_padding_waste(stats, batch_size) == sorted_waste
    assert stats.sample.tolist() == lengths.tolist()  # under LengthStats.SAMPLE rows: all of them, in order


def test_length_sample_is_bounded_and_uniform(monkeypatch):
    monkeypatch.setattr(LengthStats, "SAMPLE", 1000)
    stats = LengthStats(seed=0)
    lengths = np.repeat(np.arange(1, 11), 2000)  # 20,000 rows in order of length: a biased stream
    for part in np.array_split(lengths, 13):
        stats.add(part)
    assert len(stats.sample) == 1000 and stats.rows == 20_000
    per_length = np.bincount(stats.sample, minlength=11)[1:]
    assert per_length.min() > 60 and per_length.max() < 140  # 100 each if uniform; the first 1,000 rows are all 1s
    exact = random_padding_waste(lengths, 32, 0)
    assert abs(random_padding_waste(stats.sample, 32, 0) - exact) < 0.03


def test_encode_truncates_and_gives_empty_docs_one_unk():
    vocab = Vocabulary(["<pad>", "<unk>", "a", "b"], [0, 0, 2, 1])
    table = pa.table({
        "tokens": pa.array([["a", "b", "a", "x"], [], ["b"]], pa.list_(pa.string())),
        "label": pa.array([0, 1, 0], pa.int64()),
    })
    out, stats = encode_split(table, vocab, max_len=3, keep_head=1.0)
    assert out.column("ids").to_pylist() == [[2, 3, 2], [UNK_ID], [3]]
    assert out.column("length").to_pylist() == [3, 1, 1]
    assert out.column("row").to_pylist() == [0, 1, 2]
    assert stats == {"rows": 3, "truncated": 1, "empty_as_unk": 1}
    out, _ = encode_split(table, vocab, max_len=3, keep_head=0.5)  # int(1.5) = 1 token of the start, 2 of the end
    assert out.column("ids").to_pylist() == [[2, 2, UNK_ID], [UNK_ID], [3]]


def test_long_docs_keep_their_start_and_their_end():
    docs = [list(range(10)), [], [7, 8], list(range(100, 106))]
    assert truncate_docs(docs, 4, 0.25) == [[0, 7, 8, 9], [], [7, 8], [100, 103, 104, 105]]
    assert truncate_docs(docs, 4, 1.0) == [[0, 1, 2, 3], [], [7, 8], [100, 101, 102, 103]]
    assert truncate_docs(docs, 4, 0.0) == [[6, 7, 8, 9], [], [7, 8], [102, 103, 104, 105]]
    assert truncate_docs(docs, 0, 0.25) == docs and truncate_docs(docs, 10, 0.25) == docs
    index, lengths = kept_positions(np.array([10, 0, 2, 6]), 4, 0.5)  # positions in the docs laid end to end
    assert index.tolist() == [0, 1, 8, 9, 10, 11, 12, 13, 16, 17] and lengths.tolist() == [4, 0, 2, 4]
    assert kept_positions(np.array([3, 4]), 4, 0.5)[0] is None  # nothing cut: no index to apply
