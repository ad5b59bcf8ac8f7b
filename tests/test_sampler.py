import numpy as np
import pytest
import torch

from pipeline.sampler import LengthBucketSampler, by_length_desc, collate
from pipeline.shards import ShardReader, SplitData

rng = np.random.default_rng(0)
LENGTHS = rng.integers(1, 200, size=1000)
BUCKETS = np.searchsorted([20, 50, 100, 200], LENGTHS)


def test_every_row_exactly_once_per_epoch():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        rows = np.concatenate(s.batches())
        assert sorted(rows.tolist()) == list(range(1000))


def test_batches_stay_in_one_bucket_and_are_sorted_without_noise():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, padding_noise=0.0, seed=3)
    for batch in s.batches():
        assert len(set(BUCKETS[batch].tolist())) == 1
        assert LENGTHS[batch].tolist() == sorted(LENGTHS[batch].tolist())
        assert len(batch) <= 16


def test_token_budget_respected():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=64, max_tokens=500, seed=1)
    batches = s.batches()
    for batch in batches:
        assert len(batch) * LENGTHS[batch].max() <= 500 or len(batch) == 1
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))


def test_budget_binds_only_on_rows_longer_than_budget_over_row_cap():
    """Short texts (every row <= max_tokens / batch_size) get the same batches under any such
    budget as with none: raising the budget for long texts leaves short-text training unchanged."""
    short = LENGTHS[LENGTHS <= 125]
    short_buckets = np.searchsorted([20, 50, 100], short)

    def batches(max_tokens):
        return LengthBucketSampler(short, short_buckets, batch_size=128, max_tokens=max_tokens, seed=2).batches()

    assert batches(16000) == batches(0) == batches(128 * 125)
    assert batches(8000) != batches(0)  # the budget binds once 128 rows of the longest exceed it
    long_rows = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=128, max_tokens=16000, seed=2).batches()
    assert max(len(b) for b in long_rows if LENGTHS[b].max() > 125) < 128


def test_same_seed_same_order_and_epochs_differ():
    a = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=5)
    b = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=5)
    assert a.batches() == b.batches()
    b.set_epoch(1)
    assert a.batches() != b.batches()
    a.set_epoch(1)
    assert a.batches() == b.batches()


def test_noise_changes_batch_membership_between_epochs():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, padding_noise=0.2, seed=5)
    first = {tuple(sorted(b)) for b in s.batches()}
    s.set_epoch(1)
    second = {tuple(sorted(b)) for b in s.batches()}
    assert first != second


def test_collate_pads_and_sorts_descending():
    values = np.array([5, 6, 7, 8, 9, 10], dtype=np.int32)
    data = SplitData([values], [np.array([0, 2, 3, 6])], np.array([2, 1, 3]), np.array([0, 1, 0]), np.zeros(3),
                     np.arange(3), np.zeros(3, dtype=np.int32), np.arange(3))
    ids, lengths, labels = collate(data, [0, 1, 2])
    assert ids.tolist() == [[8, 9, 10], [5, 6, 0], [7, 0, 0]]
    assert lengths.tolist() == [3, 2, 1] and labels.tolist() == [0, 0, 1]


def test_collate_gathers_rows_of_several_shards_and_empty_rows():
    first = np.array([1, 2, 3], dtype=np.int32)     # rows [1, 2] and [3]
    second = np.array([4, 5, 6, 7], dtype=np.int32)  # rows [] and [4, 5, 6, 7]
    empty = np.array([], dtype=np.int32)             # a shard whose only row is empty
    data = SplitData([first, second, empty], [np.array([0, 2, 3]), np.array([0, 0, 4]), np.array([0, 0])],
                     np.array([2, 1, 0, 4, 0]), np.array([0, 1, 0, 1, 1]), np.zeros(5), np.arange(5),
                     np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0]))
    ids, lengths, labels = collate(data, [2, 0, 4, 3, 1])
    assert ids.tolist() == [[4, 5, 6, 7], [1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert lengths.tolist() == [4, 2, 1, 0, 0] and labels.tolist() == [1, 0, 1, 0, 1]
    assert ids.dtype == torch.int64 and lengths.dtype == torch.int64


def test_collate_equals_row_by_row_stacking_on_real_shards(demo):
    data = ShardReader(demo / "shards").split("train")
    sampler = LengthBucketSampler(data.lengths, None, batch_size=64, padding_noise=0.5, seed=3)  # batches mix shards
    batches = sampler.batches()
    assert any(len(set(data.shard_of[b].tolist())) > 1 for b in batches)
    for batch in batches:
        ids, lengths, _ = collate(data, batch)
        rows = [data.row(i) for i in by_length_desc(data, batch)]
        expected = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
        for i, row in enumerate(rows):
            expected[i, :len(row)] = row
        assert np.array_equal(ids.numpy(), expected)
        assert lengths.tolist() == [len(r) for r in rows]


def test_bad_batch_size():
    with pytest.raises(ValueError):
        LengthBucketSampler(LENGTHS, batch_size=0)
