"""Exact random subsets of a stream (pipeline.selection), ingest's carve and max_rows sample built on
them (pipeline.carve), and duplicate counts that spill (pipeline.duplicates)."""
import itertools
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from pipeline import selection
from pipeline.carve import LEFT_OUT, RowRoutes, carve_counts
from pipeline.duplicates import DuplicateCounter
from pipeline.core.schema import SPLITS
from pipeline.selection import BLOCK, Selection


def in_pieces(sel: Selection, n: int, sizes_seed: int) -> np.ndarray:
    """The selection's mask over ``n`` items taken in random piece sizes (0 included)."""
    rng, parts, done = random.Random(sizes_seed), [], 0
    while done < n:
        m = min(rng.choice([0, 1, 7, 100, BLOCK - 1, BLOCK + 3]), n - done)
        parts.append(sel.take(m))
        done += m
    return np.concatenate(parts) if parts else np.zeros(0, bool)


@pytest.mark.parametrize("n,k", [(0, 0), (10, 0), (10, 10), (1000, 137), (3 * BLOCK + 5, 2 * BLOCK + 1)])
def test_selection_takes_exactly_k_the_same_however_the_items_arrive(n, k):
    whole = Selection(n, k, 5).take(n)
    assert whole.dtype == bool and len(whole) == n and int(whole.sum()) == k
    for sizes_seed in range(3):
        assert (in_pieces(Selection(n, k, 5), n, sizes_seed) == whole).all()
    if 0 < k < n:
        assert not (Selection(n, k, 6).take(n) == whole).all()  # another seed, another subset


def test_every_subset_is_equally_likely():
    # 2 of 5 items, 20,000 seeds: each of the 10 subsets ~2,000 times (sd ~42); deterministic seeds
    counts = Counter(tuple(np.flatnonzero(Selection(5, 2, s).take(5))) for s in range(20_000))
    assert sorted(counts) == list(itertools.combinations(range(5), 2))
    assert all(1800 < c < 2200 for c in counts.values()), counts


def test_blocks_keep_each_item_equally_likely():
    # 3 blocks and a bit: how often each eighth of the stream is taken, over 300 seeds
    n, k = 3 * BLOCK + 100, 5000
    hits = sum(Selection(n, k, s).take(n).astype(np.int64) for s in range(300))
    per_eighth = np.array([part.sum() for part in np.array_split(hits, 8)]) / (300 * k / 8)
    assert np.abs(per_eighth - 1).max() < 0.03, per_eighth


def test_a_blocks_share_varies_as_drawing_without_replacement():
    # 100 of 2 blocks: the first block's share is hypergeometric, mean 50 and variance
    # 8192 * (100/16384) * (1 - 100/16384) * (16384 - 8192) / 16383 = 24.8, not a fixed 50
    # (which would make some subsets impossible)
    counts = np.array([Selection(2 * BLOCK, 100, s).take(BLOCK).sum() for s in range(400)])
    assert 48 < counts.mean() < 52 and 20 < counts.var() < 30, (counts.mean(), counts.var())


def test_past_the_hypergeometric_limit_the_total_stays_exact(monkeypatch):
    monkeypatch.setattr(selection, "HYPERGEOMETRIC_LIMIT", 10)
    n, k = 2 * BLOCK + 77, BLOCK + 5
    whole = Selection(n, k, 1).take(n)
    assert int(whole.sum()) == k
    assert (in_pieces(Selection(n, k, 1), n, 0) == whole).all()


def test_more_items_than_the_selection_was_made_for_is_an_error():
    sel = Selection(3, 1, 0)
    sel.take(3)
    with pytest.raises(ValueError):
        sel.take(1)
    with pytest.raises(ValueError):
        Selection(3, 4, 0)


def stream(routes: RowRoutes, split: str, labels: np.ndarray, sizes_seed: int | None) -> np.ndarray:
    if sizes_seed is None:
        return routes.route(split, labels)
    rng, out, i = random.Random(sizes_seed), [], 0
    while i < len(labels):
        m = rng.choice([1, 13, 500, 4096])
        out.append(routes.route(split, labels[i:i + m]))
        i += m
    return np.concatenate(out)


def test_carve_takes_a_fraction_of_every_class_test_first():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=20_000, p=[0.6, 0.3, 0.1])
    n = np.bincount(labels)
    routes = RowRoutes({"train": n}, {"test": 0.2, "validation": 0.1}, 0, seed=13)
    assert routes.outputs == ["train", "test", "validation"] and routes.carved == {"test": 0.2, "validation": 0.1}
    test, validation = routes.class_rows["test"], routes.class_rows["validation"]
    assert (test.sum(), validation.sum()) == (4000, 1600)  # the fractions of 20,000 and of the 16,000 left
    # each class gives its share within a row: rounding each share alone would carve 1,601 rows
    assert (np.abs(test - n * 0.2) < 1).all() and (np.abs(validation - (n - test) * 0.1) < 1).all()
    assert sum(round(x * 0.1) for x in n - test) == 1601
    assert routes.class_rows["train"].tolist() == (n - test - validation).tolist()
    dest = stream(routes, "train", labels, None)
    for out, want in (("train", n - test - validation), ("test", test), ("validation", validation)):
        assert np.bincount(labels[dest == SPLITS.index(out)], minlength=3).tolist() == want.tolist()
    # the same rows whatever the batches, a different carve for another dataset.seed
    for sizes_seed in (1, 2):
        again = RowRoutes({"train": n}, {"test": 0.2, "validation": 0.1}, 0, seed=13)
        assert (stream(again, "train", labels, sizes_seed) == dest).all()
    other = RowRoutes({"train": n}, {"test": 0.2, "validation": 0.1}, 0, seed=14)
    assert not (stream(other, "train", labels, None) == dest).all()


@pytest.mark.parametrize("rows,fraction,want", [
    ([7, 3], 0.25, [2, 1]),                  # 3 of 10 (2.5 rounded half up): shares 2.1 and 0.9
    ([1226, 1174], 0.1, [123, 117]),         # the demo: 240, shares 122.6 and 117.4
    ([29780, 37569], 0.05, [1489, 1878]),    # SST-2's train: 3,367, shares 1,488.8 and 1,878.2
    ([2, 2], 0.1, None),                     # 0.4 of a row: still one row, from either class
    ([1, 5], 0.5, [0, 3]),                   # the one-row class keeps its row; the other gives the 3
    ([2, 1], 0.9, [1, 0]),                   # 3 would empty train: each class keeps a row
    ([1, 1, 1], 0.1, [0, 0, 0]),             # nothing to spare
    ([0, 10], 0.1, [0, 1]),
])
def test_carve_counts_hold_the_fraction_in_all_shared_by_class_size(rows, fraction, want):
    got = carve_counts(np.array(rows), fraction, [13, 0, 1]).tolist()
    if want is None:
        assert sorted(got) == [0, 1], got
    else:
        assert got == want


def test_carve_of_many_small_classes_takes_the_fraction_and_draws_which_classes_give():
    """20 classes of 5 rows, 10%: rounding each class's 0.5 gives no row at all; the carve takes 10 rows,
    one from each of 10 classes drawn with the seed (ties), the same for the same seed."""
    rows = np.full(20, 5)
    picks = {seed: carve_counts(rows, 0.1, [seed, 0, 1]) for seed in range(4)}
    for take in picks.values():
        assert take.sum() == 10 and set(take.tolist()) == {0, 1}
    assert (carve_counts(rows, 0.1, [0, 0, 1]) == picks[0]).all()
    assert len({tuple(t) for t in picks.values()}) > 1


def test_splits_that_exist_are_not_carved_and_max_rows_samples_each_output():
    train, test = np.array([0, 1] * 3000), np.array([1, 0, 0] * 100)
    routes = RowRoutes({"train": np.bincount(train), "test": np.bincount(test)}, {"test": 0.5, "validation": 0.1},
                       max_rows=1000, seed=3)
    assert routes.outputs == ["train", "test", "validation"] and list(routes.carved) == ["validation"]
    dest_train = stream(routes, "train", train, 4)
    dest_test = stream(routes, "test", test, 5)
    assert (dest_train == SPLITS.index("train")).sum() == 1000      # sampled from 5,400
    assert (dest_train == SPLITS.index("validation")).sum() == 600  # 10% of each class, fewer than max_rows
    assert (dest_train == LEFT_OUT).sum() == 4400
    assert (dest_test == SPLITS.index("test")).all()                # 300 rows: all kept, never carved


def brute_force(rows):
    """Duplicate stats of (split, text, label) rows, the obvious way."""
    dupes, overlap, seen = {}, {}, {}
    for split in dict.fromkeys(s for s, _, _ in rows):
        mine = [(t, y) for s, t, y in rows if s == split]
        texts = {t for t, _ in mine}
        dupes[split] = {"repeated_rows": len(mine) - len(texts), "texts_with_conflicting_labels": len(set(mine)) - len(texts)}
        seen[split] = texts
    for split in dupes:
        if split != "train":
            overlap[f"{split}_in_train"] = sum(t in seen["train"] for s, t, _ in rows if s == split)
    return {"duplicates": dupes, "overlap": overlap}


@pytest.mark.parametrize("spill_rows,part_rows", [(1 << 21, 1 << 22), (700, 500)])
def test_duplicate_counts_are_exact_in_memory_or_spilled(tmp_path, monkeypatch, spill_rows, part_rows):
    monkeypatch.setattr(DuplicateCounter, "SPILL_ROWS", spill_rows)
    monkeypatch.setattr(DuplicateCounter, "PART_ROWS", part_rows)
    rng = random.Random(0)
    pool = [f"text {i} é" for i in range(1500)]
    rows = [(rng.choice(["train"] * 3 + ["validation", "test"]), rng.choice(pool), rng.randrange(3)) for _ in range(6000)]
    counter = DuplicateCounter(["train", "validation", "test"], tmp_path, expected_rows=len(rows))
    for start in range(0, len(rows), 256):  # batches of one split at a time, as ingest adds them
        chunk = rows[start:start + 256]
        for split in ("train", "validation", "test"):
            mine = [(t, y) for s, t, y in chunk if s == split]
            if mine:
                counter.add(split, pa.array([t for t, _ in mine]), np.array([y for _, y in mine]))
    want = brute_force(rows)
    assert want["duplicates"]["train"]["texts_with_conflicting_labels"] > 0 and want["overlap"]["test_in_train"] > 0
    assert counter.stats() == want
    assert counter.parts == (1 if part_rows > len(rows) else 12)  # parts of ~part_rows expected rows
    assert (len(counter.spills) > 1) == (spill_rows < len(rows))
