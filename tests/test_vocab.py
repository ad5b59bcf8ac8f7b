import pyarrow as pa
import pytest

from pipeline.errors import PipelineError
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


def test_encode_maps_unknown_and_literal_pad_to_unk():
    v = build_vocab(TOKENS, min_freq=2)
    assert v.encode(["a", "q", "c"]) == [2, UNK_ID, 4]
    ids = v.encode_arrow(pa.array(["c", "<pad>", "zz", "a"]))
    assert ids.to_pylist() == [4, UNK_ID, UNK_ID, 2]
    assert PAD_ID not in ids.to_pylist()


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
    with pytest.raises(PipelineError, match="max_size"):
        build_vocab(TOKENS, max_size=2)
    with pytest.raises(PipelineError, match="min_freq"):
        build_vocab(TOKENS, min_freq=0)
