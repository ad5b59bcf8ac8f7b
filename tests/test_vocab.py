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
    from pipeline.config import VocabConfig

    with pytest.raises(PipelineError, match="^vocab.max_size must exceed 2 .* got 2$"):
        VocabConfig.from_block({"max_size": 2})
    with pytest.raises(PipelineError, match=r"^vocab.min_freq must be >= 1, got 0; fix it in params.yaml \(or -S vocab.min_freq=...\)$"):
        VocabConfig.from_block({"min_freq": 0})
    assert VocabConfig.from_block({"max_size": 0}).max_size == 0
