import os

import numpy as np
import pyarrow as pa
import pytest

from pipeline.core.errors import PipelineError
from pipeline.vocab import PAD_ID, UNK_ID, Vocabulary, build_vocab, unk_rate

TOKENS = pa.chunked_array([pa.array([
    ["b", "a", "c", "a"],
    ["a", "b", "d", "e"],
    ["c", "b", "z"],
], pa.list_(pa.string()))])
# counts: a=3 b=3 c=2 d=1 e=1 z=1


def test_order_is_count_desc_then_token():
    v = build_vocab(TOKENS, min_freq=1)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c", "d", "e", "z"]
    assert v.counts == [0, 0, 3, 3, 2, 1, 1, 1]


def test_min_freq_and_max_size_caps():
    assert build_vocab(TOKENS, min_freq=2).itos == ["<pad>", "<unk>", "a", "b", "c"]
    assert build_vocab(TOKENS, min_freq=1, max_size=4).itos == ["<pad>", "<unk>", "a", "b"]


def test_both_encoders_map_unknown_and_literal_pad_to_unk():
    v = build_vocab(TOKENS, min_freq=2)
    words = ["c", "<pad>", "zz", "a", "<unk>", "b"]
    expected = [4, UNK_ID, UNK_ID, 2, UNK_ID, 3]
    assert v.encode(words) == expected
    assert v.encode_arrow(pa.array(words)).to_pylist() == expected
    assert v.stoi["<pad>"] == PAD_ID  # the vocabulary still holds it; text can never reach it


def test_unk_rate_counts_tokens_outside_vocab():
    v = build_vocab(TOKENS, min_freq=2)
    assert unk_rate(v, TOKENS) == {"tokens": 11, "unk_tokens": 3, "unk_rate": round(3 / 11, 6)}


def test_save_load_roundtrip(tmp_path):
    v = build_vocab(TOKENS, min_freq=1)
    v.save(tmp_path / "v.tsv")
    back = Vocabulary.load(tmp_path / "v.tsv")
    assert back.itos == v.itos and back.counts == v.counts
    assert (tmp_path / "v.tsv").read_text().splitlines()[:3] == ["<pad>\t0", "<unk>\t0", "a\t3"]


def test_bad_caps_are_errors():
    from pipeline.core.config import VocabConfig

    with pytest.raises(PipelineError, match="^vocab.max_size must exceed 2 .* got 2$"):
        VocabConfig.from_block({"max_size": 2})
    with pytest.raises(PipelineError, match=r"^vocab.min_freq must be >= 1, got 0; fix it in params.yaml \(or -S vocab.min_freq=...\)$"):
        VocabConfig.from_block({"min_freq": 0})
    assert VocabConfig.from_block({"max_size": 0}).max_size == 0


def test_ties_follow_code_point_order_like_python():
    words = ["é", "z", "😀", "Z", "a", "ab", "€", "<unk>", "<pad>"]
    v = build_vocab(pa.array([words, ["z", "€"]], pa.list_(pa.string())), min_freq=1)
    assert v.itos == ["<pad>", "<unk>", "z", "€", "Z", "a", "ab", "é", "😀"]  # literal specials are not words
    assert v.counts == [0, 0, 2, 2, 1, 1, 1, 1, 1]


def test_token_part_is_a_function_of_the_bytes_and_spreads_tokens():
    from pipeline.vocab import token_part

    tokens = pa.array([f"w{i}" for i in range(10_000)] + ["", "a" * 40, "a" * 41])
    parts = token_part(tokens, 8)
    assert parts.min() >= 0 and parts.max() == 7
    counts = np.bincount(parts[:10_000], minlength=8)
    assert counts.min() > 1_100 and counts.max() < 1_400  # 1,250 each if even
    # a slice, a large_string array and a chunk of another array give each token the same part
    assert token_part(tokens.slice(9_990), 8).tolist() == parts[9_990:].tolist()
    assert token_part(tokens.cast(pa.large_string()).slice(5, 7), 8).tolist() == parts[5:12].tolist()
    assert token_part(pa.array(["w7", "w3", "w7"]), 8).tolist() == [parts[7], parts[3], parts[7]]


def test_token_counter_spills_parts_and_sums_them_exactly(demo, monkeypatch, tmp_path):
    from collections import Counter

    from pipeline.core.fileio import read_arrow
    from pipeline.vocab import TokenCounter, TopTokens

    monkeypatch.setattr(TokenCounter, "MERGE_ROWS", 50)
    monkeypatch.setattr(TokenCounter, "SPILL_TYPES", 100)  # the demo's train split has 280 distinct tokens
    monkeypatch.setattr(TokenCounter, "PARTS", 5)
    tokens = pa.chunked_array([read_arrow(demo / "tokens" / "train.arrow").column("tokens").combine_chunks(),
                               pa.array([["only-in-the-last-batch", "the"]], pa.list_(pa.string()))])
    expected = Counter(t for doc in tokens.to_pylist() for t in doc)

    def exact(pieces):
        seen = [t for piece in pieces for t in piece.column("token").to_pylist()]
        assert len(seen) == len(set(seen)) == len(expected)  # every token in exactly one piece
        assert {t: c for piece in pieces for t, c in zip(piece.column("token").to_pylist(),
                                                         piece.column("count").to_pylist())} == dict(expected)

    in_memory = TokenCounter()  # no scratch (a Ray task): merged, never written
    spilling = TokenCounter(tmp_path)
    for counter in (in_memory, spilling):
        for start in range(0, len(tokens) - 1, 97):
            counter.add(tokens.slice(start, min(97, len(tokens) - 1 - start)))
        counter.add(tokens.slice(len(tokens) - 1))  # a last batch too small to merge before totals()
    exact(list(in_memory.totals()))
    assert not in_memory.spills
    pieces = list(spilling.totals())
    assert len(spilling.spills) > 3 and sorted(tmp_path.iterdir()) == spilling.spills
    assert len(pieces) == 5
    exact(pieces)
    top = TopTokens(min_freq=2, max_size=50)
    for piece in pieces:
        top.add(piece)
    spilled, whole = top.vocabulary(), build_vocab(tokens, min_freq=2, max_size=50)
    assert spilled.itos == whole.itos and spilled.counts == whole.counts and len(whole) == 50
    assert top.types == len(expected)


def test_vocab_stage_that_spills_writes_the_same_vocabulary(demo, monkeypatch, tmp_path):
    from pipeline.core.config import VocabConfig
    from pipeline.vocab import TokenCounter, vocab_stage

    monkeypatch.setattr(TokenCounter, "MERGE_ROWS", 50)
    monkeypatch.setattr(TokenCounter, "SPILL_TYPES", 100)
    spills = []
    real_spill = TokenCounter._spill

    def spill(self):
        real_spill(self)
        spills.append(self.spills[-1])
        scratch = self.spills[-1].parent  # beside the output (under artifacts/), named for sweep_stale
        assert scratch.parent == tmp_path and scratch.suffix == ".tmp"
        assert scratch.name.startswith(f".vocab.{os.getpid()}.")
    monkeypatch.setattr(TokenCounter, "_spill", spill)
    metrics = vocab_stage(demo / "tokens", tmp_path / "vocab", VocabConfig())
    assert spills  # the stage read its counts back from the scratch folder
    assert [p.name for p in tmp_path.iterdir()] == ["vocab"]  # the scratch folder is gone
    for name in ("vocab.tsv", "metrics.json"):
        assert (tmp_path / "vocab" / name).read_bytes() == (demo / "vocab" / name).read_bytes()
    assert (metrics["train_types"], metrics["size"]) == (280, 282)


def test_a_frequency_floor_that_leaves_no_word_stops_the_vocab_stage_in_one_line(demo, tmp_path):
    from pipeline.core.config import VocabConfig
    from pipeline.vocab import vocab_stage

    with pytest.raises(PipelineError, match=r"^no word of the train split occurs vocab.min_freq \(10000000\) times, so the "
                                            r"vocabulary would hold no word \([\d,]+ distinct tokens seen\); lower vocab.min_freq$"):
        vocab_stage(demo / "tokens", tmp_path / "vocab", VocabConfig(min_freq=10_000_000))
    assert not (tmp_path / "vocab").exists()
