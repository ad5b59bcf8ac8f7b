"""Tokenize normalised texts a word at a time, remembering each word's tokens.

spaCy's tokenizer splits a text at single spaces into words and tokenizes each word on its own
(prefixes, suffixes, infixes, special cases), then runs one pass over the whole doc that re-applies
special cases whose pieces the affix rules split apart (``_apply_special_cases``). Its own cache of
words holds 10,000 entries, so on a real corpus most words are tokenized again every time they
occur: ~3 us a token on IMDB, where looking a word up in a dict takes a fraction of that.

``WordMemo`` gives exactly the token strings of ``tokenizer(text)`` for a text with no whitespace
but single spaces between words (what ``TextNormalizer`` with ``normalize_whitespace`` makes):

- a word's tokens before the final pass, X(word), depend on the word alone: spaCy caches them by
  the word's hash. They are read from a twin of the tokenizer (same rules, same affix functions)
  whose final pass has no patterns, on many new words at once joined by spaces;
- the final pass matches each special case's pattern (its string as tokenized without special
  cases) against the doc's tokens. A match across words covers a text with a space in it, which
  is no rule's string when no rule mixes whitespace with other characters (checked, else the memo
  is not used), so it changes no token. A match inside a word replaces the pattern's tokens by the
  rule's, which changes the token strings only for rules whose tokens differ from their pattern's
  ("a." is one token by rule, "a" "." by pattern); whether it is applied depends on overlapping
  matches, possibly across words. So a word whose X(word) contains such a pattern is marked, and
  a text with a marked word is tokenized whole by spaCy.

The memo holds at most ``max_words`` words (or one chunk's): when a chunk's new words would take
it past that it starts again empty, so memory does not grow with the corpus (nor does spaCy's vocab,
which keeps every string: the worker starts a new tokenizer and memo past ``tokenize.MAX_STRINGS``).
``tests/test_word_memo.py`` checks the output against spaCy's own on real datasets and on texts
built to hit every rule.
"""
from __future__ import annotations

import itertools
import operator
from typing import Sequence

import numpy as np

TESTED_SPACY = ("3.8.",)  # other releases tokenize text whole, as spaCy does (always exact)
MAX_WORDS = 250_000  # ~75 MB per process: ~300 bytes a word on IMDB, spaCy's strings included


def _affix_functions(tokenizer) -> dict:
    """The keyword arguments that give a new ``Tokenizer`` the same affix and match functions."""
    return {name: getattr(tokenizer, name)
            for name in ("prefix_search", "suffix_search", "infix_finditer", "token_match", "url_match")}


def _affix_only_twin(tokenizer):
    """A tokenizer with ``tokenizer``'s rules and affix functions whose final special-case pass has no
    patterns but the whitespace rules': spaCy adds a pattern for a rule only where the rule's string
    has an affix (``find_prefix`` & co., looked up on the instance), so the twin finds none while it
    loads its rules and spaCy's own methods afterwards."""
    from spacy.tokenizer import Tokenizer

    class _Twin(Tokenizer):
        def find_prefix(self, string):
            return 0

        def find_suffix(self, string):
            return 0

        def find_infix(self, string):
            return []

    twin = _Twin(tokenizer.vocab, rules=tokenizer.rules, **_affix_functions(tokenizer))
    for name in ("find_prefix", "find_suffix", "find_infix"):  # spaCy's own methods from here on
        delattr(_Twin, name)
    return twin


def memo_applies(tokenizer) -> bool:
    """Whether ``WordMemo`` reproduces ``tokenizer`` exactly: spaCy's own rule-based tokenizer class
    (not a custom one) with no rule whose string mixes whitespace with other characters, in a spaCy
    release the tests ran on (the twin relies on how spaCy loads its rules)."""
    import spacy
    from spacy.tokenizer import Tokenizer

    return (spacy.__version__.startswith(TESTED_SPACY) and type(tokenizer) is Tokenizer and not any(
        any(ch.isspace() for ch in key) and not key.isspace() for key in tokenizer.rules))


class WordMemo:
    """ORTH hashes of normalised texts' tokens, equal to ``tokenizer(text)``'s (see the module doc)."""

    def __init__(self, tokenizer, max_words: int = MAX_WORDS):
        from spacy.attrs import ORTH, intify_attrs

        if not memo_applies(tokenizer):
            raise ValueError("WordMemo needs spaCy's rule-based Tokenizer without rules that contain spaces")
        self.tokenizer = tokenizer
        # only ORTH is read, so the lexical attributes spaCy computes in Python for every new string
        # (shape, like_num, is_stop, ...: a third of the time spent on a new word) are not
        tokenizer.vocab.lex_attr_getters = None
        self.twin = _affix_only_twin(tokenizer)
        self.max_words = max_words
        self.words: dict[str, bytes] = {}  # word -> X(word): its tokens' ORTH hashes, 8 bytes each
        self.marked: set[str] = set()  # words whose texts spaCy tokenizes whole
        bare = type(tokenizer)(tokenizer.vocab, rules=None, **_affix_functions(tokenizer))
        strings = tokenizer.vocab.strings
        # every rule whose tokens differ from its pattern's (whether or not spaCy's heuristics give the
        # rule a pattern in its final pass: more marks cost time, never exactness), by the first token
        self.patterns: dict[int, list[tuple[int, ...]]] = {}
        for key, pieces in tokenizer.rules.items():
            pattern = tuple(t.orth for t in bare(key))
            if pattern and pattern != tuple(intify_attrs(p, strings_map=strings)[ORTH] for p in pieces):
                self.patterns.setdefault(pattern[0], []).append(pattern)
        self._firsts = np.fromiter(self.patterns, dtype=np.uint64, count=len(self.patterns))

    def _learn(self, words: list[str]) -> None:
        """Add X(word) of new words, from the twin tokenizing them joined by single spaces; a word holding
        the pattern of a rule that would change it also goes to ``marked``."""
        from spacy.attrs import IDX, ORTH

        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        arr = self.twin(" ".join(words)).to_array([ORTH, IDX]).reshape(-1, 2)
        orths = arr[:, 0]
        cuts = np.searchsorted(arr[:, 1], starts)  # the first token of each word
        bounds = np.append(cuts, len(orths)).tolist()
        marked = set()
        for i in np.flatnonzero(np.isin(orths, self._firsts)).tolist():
            word = int(np.searchsorted(cuts, i, side="right")) - 1
            tail = tuple(orths[i:bounds[word + 1]].tolist())
            if any(tail[:len(p)] == p for p in self.patterns[tail[0]]):
                marked.add(word)
        data = orths.astype("<u8").tobytes()  # a word's hashes as 8-byte little-endian integers
        bounds = [8 * b for b in bounds]
        self.words.update((w, data[bounds[j]:bounds[j + 1]]) for j, w in enumerate(words))
        self.marked.update(words[j] for j in marked)

    def orths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the texts' token ORTH hashes one after another as uint64, the number of tokens of each text).

        Every per-word step runs in C (``map``, ``bytes.join``, set operations): Python code runs per
        text and per new word only."""
        from spacy.attrs import ORTH

        split = [t.split(" ") if t else [] for t in texts]
        words = list(itertools.chain.from_iterable(split))
        found = list(map(self.words.get, words))
        if None in found:  # new words
            new = set(itertools.compress(words, map(operator.not_, found)))
            if len(self.words) + len(new) > self.max_words:
                self.words.clear()
                self.marked.clear()
                new = set(words)
            self._learn(list(new))
            found = list(map(self.words.__getitem__, words))
        word_starts = np.zeros(len(texts) + 1, dtype=np.int64)  # words before each text, and in all
        np.cumsum(np.fromiter(map(len, split), dtype=np.int64, count=len(split)), out=word_starts[1:])
        token_starts = np.zeros(len(words) + 1, dtype=np.int64)  # tokens before each word, and in all
        np.cumsum(np.fromiter(map(len, found), dtype=np.int64, count=len(found)) // 8, out=token_starts[1:])
        bounds = token_starts[word_starts]  # tokens before each text, and in all
        flat = np.frombuffer(b"".join(found), dtype="<u8").astype(np.uint64, copy=False)
        lengths = np.diff(bounds)
        if self.marked.isdisjoint(words):
            return flat, lengths
        # texts with a marked word: spaCy's pass over the whole text decides
        is_marked = np.fromiter(map(self.marked.__contains__, words), dtype=np.int64, count=len(words))
        marks = np.concatenate([[0], np.cumsum(is_marked)])  # marked words before each word, and in all
        whole = np.flatnonzero(marks[word_starts[1:]] > marks[word_starts[:-1]]).tolist()
        pieces, last = [], 0
        for n in whole:
            pieces += [flat[last:bounds[n]], self.tokenizer(texts[n]).to_array([ORTH]).ravel().astype(np.uint64)]
            last = bounds[n + 1]
            lengths[n] = len(pieces[-1])
        pieces.append(flat[last:])
        return np.concatenate(pieces), lengths
