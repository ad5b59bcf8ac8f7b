import numpy as np
import pyarrow as pa
import pytest

from pipeline.buckets import assign_buckets, bucket_boundaries, encode_split, padding_waste
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
    out, stats = encode_split(table, vocab, max_len=3)
    assert out.column("ids").to_pylist() == [[2, 3, 2], [UNK_ID], [3]]
    assert out.column("length").to_pylist() == [3, 1, 1]
    assert out.column("row").to_pylist() == [0, 1, 2]
    assert stats == {"rows": 3, "truncated": 1, "empty_as_unk": 1}
