import numpy as np
import pyarrow as pa
import pytest

from pipeline.buckets import assign_buckets, bucket_boundaries, encode_split, kept_positions, padding_waste, truncate_docs
from pipeline.errors import PipelineError
from pipeline.vocab import UNK_ID, Vocabulary


def test_quantile_boundaries_split_rows_evenly():
    lengths = np.arange(1, 101)
    bounds = bucket_boundaries(lengths, 4)
    assert bounds == [25, 50, 75, 100]
    assert np.bincount(assign_buckets(lengths, bounds)).tolist() == [25, 25, 25, 25]


def test_explicit_boundaries_get_a_last_bucket_for_longer_rows():
    lengths = np.array([1, 5, 10, 11, 30])
    bounds = bucket_boundaries(lengths, [5, 10])
    assert bounds == [5, 10, 30]
    assert assign_buckets(lengths, bounds).tolist() == [0, 0, 1, 2, 2]
    from pipeline.config import BucketConfig

    with pytest.raises(PipelineError, match=r"^bucket.boundaries must be a strictly increasing list of positive lengths, got \[10, 5\]$"):
        BucketConfig.from_block({"boundaries": [10, 5]})
    with pytest.raises(PipelineError, match="^bucket.boundaries must be a number of buckets >= 1"):
        BucketConfig.from_block({"boundaries": 0})


def test_padding_waste_exact_values():
    lengths = np.array([1, 1, 3, 3])
    # sorted batches of 2: [1,1] and [3,3] -> no padding
    assert padding_waste(lengths, 2, buckets=np.zeros(4, dtype=int)) == 0.0
    # one batch of 4 -> padded to 3: 12 slots, 8 real
    assert padding_waste(lengths, 4, None) == round(4 / 12, 6)


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
