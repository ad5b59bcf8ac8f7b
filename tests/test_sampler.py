from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.sampler import LengthBucketSampler, by_length_desc, collate
from pipeline.core.errors import PipelineError
from pipeline.shards import ShardReader, SplitData, shard_stage
from pipeline.core.config import ShardConfig

rng = np.random.default_rng(0)
LENGTHS = rng.integers(1, 200, size=1000)
BUCKETS = np.searchsorted([20, 50, 100, 200], LENGTHS)


def as_lists(batches):
    return [b.tolist() for b in batches]


def test_every_row_exactly_once_per_epoch():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        rows = np.concatenate(s.batches())
        assert sorted(rows.tolist()) == list(range(1000))


@pytest.mark.parametrize("batch_size, max_tokens", [(16, 0), (64, 500), (128, 3200), (7, 30), (128, 100)])
def test_cuts_are_the_greedy_row_by_row_rule(batch_size, max_tokens):
    """A row joins the batch unless the batch is full or, padded to its longest row with this one, it would
    pass max_tokens (a first row always joins): the rule written row by row, against the sampler's cuts."""
    lengths = np.random.default_rng(batch_size + max_tokens).integers(0, 300, 2000)
    ends, count, longest = [], 0, 0
    for i, length in enumerate(lengths.tolist()):
        if count and (count >= batch_size or (max_tokens and max(longest, length) * (count + 1) > max_tokens)):
            ends.append(i)
            count, longest = 0, 0
        count, longest = count + 1, max(longest, length)
    ends.append(len(lengths))
    sampler = LengthBucketSampler(lengths.astype(np.int32), batch_size=batch_size, max_tokens=max_tokens)
    assert sampler._cuts(lengths.astype(np.int32)) == ends
    batches = sampler.batches()
    assert all(len(b) for b in batches) and sum(map(len, batches)) == 2000


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


def test_rows_longer_than_half_the_budget_are_batches_of_their_own():
    lengths = np.array([10] * 20 + [50, 51, 80, 10, 300])
    sampler = LengthBucketSampler(lengths, None, batch_size=8, max_tokens=100, seed=3)
    assert sampler.lone_rows() == 3  # 51, 80 and 300; 50 pairs with one of 50 or shorter
    alone = sorted(int(b[0]) for b in sampler.batches() if len(b) == 1 and lengths[b[0]] > 50)
    assert alone == [21, 22, 24]
    assert LengthBucketSampler(lengths, None, batch_size=8, max_tokens=0).lone_rows() == 0
    assert LengthBucketSampler(lengths, None, batch_size=8, max_tokens=600).lone_rows() == 0


def test_budget_binds_only_on_rows_longer_than_budget_over_row_cap():
    """Short texts (every row <= max_tokens / batch_size) get the same batches under any such
    budget as with none: raising the budget for long texts leaves short-text training unchanged."""
    short = LENGTHS[LENGTHS <= 125]
    short_buckets = np.searchsorted([20, 50, 100], short)

    def batches(max_tokens):
        return as_lists(LengthBucketSampler(short, short_buckets, batch_size=128, max_tokens=max_tokens, seed=2).batches())

    assert batches(16000) == batches(0) == batches(128 * 125)
    assert batches(8000) != batches(0)  # the budget binds once 128 rows of the longest exceed it
    long_rows = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=128, max_tokens=16000, seed=2).batches()
    assert max(len(b) for b in long_rows if LENGTHS[b].max() > 125) < 128


def test_same_seed_same_order_and_epochs_differ():
    a = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=5)
    b = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, seed=5)
    assert as_lists(a.batches()) == as_lists(b.batches())
    b.set_epoch(1)
    assert as_lists(a.batches()) != as_lists(b.batches())
    a.set_epoch(1)
    assert as_lists(a.batches()) == as_lists(b.batches())


def test_noise_changes_batch_membership_between_epochs():
    s = LengthBucketSampler(LENGTHS, BUCKETS, batch_size=16, padding_noise=0.2, seed=5)
    first = {tuple(sorted(b)) for b in s.batches()}
    s.set_epoch(1)
    second = {tuple(sorted(b)) for b in s.batches()}
    assert first != second


def test_collate_pads_and_sorts_descending():
    values = np.array([5, 6, 7, 8, 9, 10], dtype=np.int32)
    data = SplitData([values], [np.array([0, 2, 3, 6])], [np.array([0, 1, 0])], [np.arange(3)],
                     np.array([2, 1, 3], dtype=np.int32), np.zeros(3, dtype=np.int16))
    ids, lengths, labels = collate(data, [0, 1, 2])
    assert ids.tolist() == [[8, 9, 10], [5, 6, 0], [7, 0, 0]]
    assert lengths.tolist() == [3, 2, 1] and labels.tolist() == [0, 0, 1]


def test_collate_gathers_rows_of_several_shards_and_empty_rows():
    first = np.array([1, 2, 3], dtype=np.int32)     # rows [1, 2] and [3]
    second = np.array([4, 5, 6, 7], dtype=np.int32)  # rows [] and [4, 5, 6, 7]
    empty = np.array([], dtype=np.int32)             # a shard whose only row is empty
    data = SplitData([first, second, empty, empty], [np.array([0, 2, 3]), np.array([0, 0, 4]), np.array([0]), np.array([0, 0])],
                     [np.array([0, 1]), np.array([0, 1]), np.zeros(0, dtype=np.int64), np.array([1])],
                     [np.arange(2), np.arange(2, 4), np.zeros(0, dtype=np.int64), np.array([4])],
                     np.array([2, 1, 0, 4, 0], dtype=np.int32), np.zeros(5, dtype=np.int16))  # the third part: no rows
    assert data.locate([0, 1, 2, 3, 4])[0].tolist() == [0, 0, 1, 1, 3]
    assert data.raw_rows_of(np.array([4, 0, 3])).tolist() == [4, 0, 3]
    ids, lengths, labels = collate(data, [2, 0, 4, 3, 1])
    assert ids.tolist() == [[4, 5, 6, 7], [1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert lengths.tolist() == [4, 2, 1, 0, 0] and labels.tolist() == [1, 0, 1, 0, 1]
    assert ids.dtype == torch.int64 and lengths.dtype == torch.int64


def test_collate_equals_row_by_row_stacking_on_real_shards(demo):
    data = ShardReader(demo / "shards").split("train")
    sampler = LengthBucketSampler(data.lengths, None, batch_size=64, padding_noise=0.5, seed=3)  # batches mix shards
    batches = sampler.batches()
    assert any(len(set(data.locate(b)[0].tolist())) > 1 for b in batches)
    for batch in batches:
        ids, lengths, _ = collate(data, batch)
        rows = [data.row(i) for i in by_length_desc(data, batch)]
        expected = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
        for i, row in enumerate(rows):
            expected[i, :len(row)] = row
        assert np.array_equal(ids.numpy(), expected)
        assert lengths.tolist() == [len(r) for r in rows]


@pytest.mark.parametrize("batch_size, max_tokens", [(64, 0), (64, 900), (7, 0), (256, 16000), (50, 10)])
def test_length_ordered_batches_are_the_unshuffled_sampler_and_collate(demo, tmp_path, batch_size, max_tokens):
    """What validation and evaluate read without holding anything per row is exactly what the sampler
    (no shuffle) and collate gave: the same batches, rows in the same order, the same ids, on shards small
    enough that every bucket spans several (and a budget that binds, and one below the longest row)."""
    shard_stage(demo / "ids", demo / "vocab" / "vocab.tsv", tmp_path / "shards", ShardConfig(shard_size_mb=0.002))
    reader = ShardReader(tmp_path / "shards")
    shards = reader.manifest["splits"]["train"]["shards"]
    assert len(shards) > 2 * len({s["bucket"] for s in shards})  # most buckets in several shards
    data = reader.split("train")
    expected = LengthBucketSampler(data.lengths, None, batch_size, max_tokens, shuffle=False).batches()
    got = list(reader.length_ordered("train", batch_size, max_tokens))
    assert len(got) == len(expected) and np.array_equal(np.concatenate(expected), np.argsort(data.lengths, kind="stable"))
    for batch, rows in zip(got, expected):
        ids, lengths, labels = collate(data, rows)
        order = by_length_desc(data, rows)
        assert np.array_equal(batch.ids, ids.numpy()) and batch.ids.dtype == np.int64
        assert batch.lengths.tolist() == lengths.tolist() and batch.labels.tolist() == labels.tolist()
        assert batch.positions.tolist() == order.tolist()
        assert batch.raw_rows.tolist() == data.raw_rows_of(order).tolist()
    assert sorted(np.concatenate([b.positions for b in got]).tolist()) == list(range(len(data)))


def test_length_ordered_refuses_a_shard_not_sorted_by_length(demo, tmp_path):
    import pyarrow as pa

    import shutil

    reader = ShardReader(demo / "shards")
    for shard in reader.manifest["splits"]["test"]["shards"]:
        shutil.copy(demo / "shards" / shard["file"], tmp_path)
    name = reader.manifest["splits"]["test"]["shards"][-1]["file"]
    table = pa.ipc.open_file(pa.memory_map(str(demo / "shards" / name))).read_all()
    flipped = table.take(pa.array(np.arange(table.num_rows)[::-1]))
    with pa.OSFile(str(tmp_path / name), "wb") as f, pa.ipc.new_file(f, flipped.schema) as w:
        w.write_table(flipped)
    reader.dir = tmp_path  # the checksums were checked on opening; this stands for a shard written otherwise
    with pytest.raises(PipelineError, match=f"{name} is not sorted by length; rerun `textpipe shard`"):
        list(reader.length_ordered("test", 64))


def synthetic_shards(tmp_path):
    """120,000 rows of 1-39 ids in two buckets, as shards of 4 MB (over 12 MB in all): (folder, bytes)."""
    import pyarrow as pa

    from pipeline.core.fileio import ArrowWriter, write_json
    from pipeline.shards import FORMAT, ShardWriter

    rng = np.random.default_rng(0)
    rows = 120_000
    lengths = rng.integers(1, 40, rows).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.integers(2, 1000, int(offsets[-1]), dtype=np.int32)))
    table = pa.table({"ids": ids, "label": pa.array(rng.integers(0, 2, rows)), "length": pa.array(lengths),
                      "row": pa.array(np.arange(rows)), "bucket": pa.array((lengths > 20).astype(np.int16))})
    with ArrowWriter(tmp_path / "train.arrow", table.schema) as writer:
        writer.write(table)
    out = tmp_path / "shards"
    out.mkdir()
    split = ShardWriter(out, 4 << 20).write_split("train", tmp_path / "train.arrow")
    write_json(out / "manifest.json", {"format": FORMAT, "labels": ["a", "b"], "splits": {"train": split}})
    shard_bytes = sum(s["bytes"] for s in split["shards"])
    assert len(split["shards"]) >= 4 and shard_bytes > 12 << 20
    return out, shard_bytes


def resident_kb(folder) -> int:
    """The resident pages of this process's maps of the .arrow files in ``folder``, in kB."""
    total, ours = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef":  # a mapping's header line: address range ... path
            ours = line.rstrip().endswith(".arrow") and str(folder) in line
        elif ours and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


ON_LINUX = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads the process's mappings from /proc (Linux)")


@ON_LINUX
def test_length_ordered_gives_back_the_pages_it_has_read(tmp_path, monkeypatch):
    """Reading a split in length order keeps the pages of about the last GIVE_BACK_BYTES read mapped, not
    the split: the shards' resident pages, taken at every batch, stay a small share of their bytes."""
    from pipeline.shards import MappedPages

    out, shard_bytes = synthetic_shards(tmp_path)
    monkeypatch.setattr(MappedPages, "GIVE_BACK_BYTES", 1 << 20)
    seen, peak = 0, 0
    for batch in ShardReader(out, verify=False).length_ordered("train", 256):
        seen += len(batch.lengths)
        peak = max(peak, resident_kb(out))
    assert seen == 120_000
    assert 0 < peak * 1024 < shard_bytes / 4, (peak, shard_bytes)


@ON_LINUX
def test_the_training_split_copies_lengths_and_buckets_and_gives_their_pages_back(tmp_path):
    """What training holds per row: the lengths (int32) and buckets (int16) it sorts by, copied; the pages
    read for them are given back, so the shards are not mapped just by opening the split."""
    out, shard_bytes = synthetic_shards(tmp_path)
    data = ShardReader(out, verify=False).split("train")
    assert data.lengths.dtype == np.int32 and data.buckets.dtype == np.int16 and len(data) == 120_000
    assert resident_kb(out) * 1024 < shard_bytes / 50
    assert not any(v.flags.writeable for v in data.values + data.offsets)  # views of the read-only maps, not copies


def test_bad_batch_size():
    with pytest.raises(ValueError):
        LengthBucketSampler(LENGTHS, batch_size=0)
