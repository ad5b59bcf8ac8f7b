"""WordMemo gives exactly spaCy's tokens of a normalised text, word by word, with memory bounded."""
import itertools
import random

import pyarrow.parquet as pq
import pytest
import spacy

from pipeline.tokenize import TextNormalizer, load_tokenizer
from pipeline.word_memo import TESTED_SPACY, WordMemo, memo_applies

from .helpers import shared_dataset

pytestmark = pytest.mark.skipif(
    not spacy.__version__.startswith(TESTED_SPACY),
    reason=f"spaCy {spacy.__version__} is not a release the word memo is used on ({TESTED_SPACY}): the stage "
           "tokenizes texts whole there; run these tests with it before adding it to word_memo.TESTED_SPACY")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("en")


def spacy_tokens(tokenizer, text):
    return [t.text for t in tokenizer(text)]


def memo_tokens(memo, texts):
    flat, lengths = memo.orths(texts)
    strings = memo.tokenizer.vocab.strings
    words = [strings[int(h)] for h in flat]
    ends = list(itertools.accumulate(lengths.tolist()))
    assert ends[-1] == len(words)
    return [words[e - n:e] for e, n in zip(ends, lengths.tolist())]


def test_a_word_is_not_always_tokenized_as_alone_and_the_memo_knows_when(tokenizer):
    """spaCy's last pass re-applies special cases over the whole doc, and a match across two words
    can stop one inside a word: "''the" alone is ["''", "the"], after "'" it is ["'", "'", "the"]."""
    text = "' ''the"
    alone = [t for word in text.split(" ") for t in spacy_tokens(tokenizer, word)]
    assert alone == ["'", "''", "the"]
    assert spacy_tokens(tokenizer, text) == ["'", "'", "'", "the"]
    memo = WordMemo(load_tokenizer("en"))
    assert memo_tokens(memo, ["''the", text, "the ''the ."]) == [
        ["''", "the"], ["'", "'", "'", "the"], spacy_tokens(tokenizer, "the ''the .")]
    assert "''the" in memo.marked


def test_equal_to_spacy_on_texts_built_from_every_rule(tokenizer):
    """Words made of every special-case rule with affixes glued on, in random texts; a memo small
    enough to be emptied on the way."""
    rng = random.Random(0)
    glue = ["", "(", ")", ".", ",", "'", "''", ":", ")", "...", "-", '"', ":)"]
    words = [a + key + b for key in tokenizer.rules if not key.isspace() for a, b in [(rng.choice(glue), rng.choice(glue))]]
    words += ["the", "film", "it's", "e.g.", "a.", "don't", "u.s.", "http://x.org/a?b=c.", "12-1am", "3-d."]
    texts = [""] + [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(3000)]
    memo = WordMemo(load_tokenizer("en"), max_words=1200)  # a chunk of 250 texts holds ~940 words
    got, sizes = [], []
    for i in range(0, len(texts), 250):
        got += memo_tokens(memo, texts[i:i + 250])
        sizes.append(len(memo.words))
    assert max(sizes) <= 1200 and any(b < a for a, b in zip(sizes, sizes[1:]))  # full, so emptied and refilled
    want = [spacy_tokens(tokenizer, t) for t in texts]
    assert got == want
    alone = [[t for w in text.split(" ") for t in spacy_tokens(tokenizer, w)] if text else [] for text in texts]
    assert sum(a != w for a, w in zip(alone, want)) > 10  # texts where a word alone is not enough
    assert got[0] == []


def test_a_users_special_case_is_kept():
    """A rule added the way spaCy's docs show (string keys), whose tokens differ from its pattern's."""
    tokenizer = load_tokenizer("en")
    tokenizer.add_special_case("gimme!", [{"ORTH": "gim"}, {"ORTH": "me!"}])
    texts = ["gimme!", "(gimme!)", "' gimme!' now", "gimme!! gimme!", "gimme"]
    want = [spacy_tokens(tokenizer, t) for t in texts]
    assert want[0] == ["gim", "me!"] and want[4] == ["gimme"]
    assert memo_tokens(WordMemo(tokenizer), texts) == want


@pytest.mark.parametrize("name,split,rows", [("sst2", "validation", 872), ("imdb", "train", 500), ("ag_news", "test", 1000)])
def test_equal_to_spacy_on_real_text(tokenizer, name, split, rows):
    path = shared_dataset(name) / f"{split}.parquet"
    normalize = TextNormalizer()
    texts = [normalize(t) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()[:rows]]
    memo = WordMemo(load_tokenizer("en"))
    got = [toks for i in range(0, len(texts), 300) for toks in memo_tokens(memo, texts[i:i + 300])]
    assert got == [spacy_tokens(tokenizer, t) for t in texts]
    assert len(got) == rows


def test_used_only_where_exact(monkeypatch):
    from spacy.tokenizer import Tokenizer

    from pipeline import tokenize

    plain = load_tokenizer("en")
    assert memo_applies(plain)
    spaced = load_tokenizer("en")
    spaced.add_special_case("new york", [{"ORTH": "new york"}])  # a rule across a space: words are not alone
    assert not memo_applies(spaced)
    with pytest.raises(ValueError):
        WordMemo(spaced)

    class Custom(Tokenizer):
        pass

    assert not memo_applies(Custom(plain.vocab))
    monkeypatch.setattr(spacy, "__version__", "3.9.0")  # a release the tests have not run on
    assert not memo_applies(plain)
    monkeypatch.undo()
    monkeypatch.setattr(tokenize, "_WORKER", {})
    tokenize._init_worker("en", None, TextNormalizer(normalize_whitespace=False))  # spaCy sees raw whitespace runs
    assert tokenize._WORKER["memo"] is None
    tokenize._init_worker("en", None, TextNormalizer())
    assert isinstance(tokenize._WORKER["memo"], WordMemo)
