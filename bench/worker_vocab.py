"""A tokenizer worker's memory on a corpus whose words keep being new.

spaCy's vocab keeps every distinct string it has tokenized (with its lexeme), so on a corpus with
ever more distinct words (names, numbers, typos, URLs: their number grows with the corpus) a worker
would grow without end. This feeds one worker chunks of texts made of random new words, as the
tokenize stage does, and prints after each chunk the strings in its vocab, the words in its memo and
its resident memory; with ``--max-strings 0`` the worker never starts a new tokenizer (as before
``tokenize.MAX_STRINGS``), to compare.

    python bench/worker_vocab.py --chunks 12
    python bench/worker_vocab.py --chunks 12 --max-strings 0
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import tokenize  # noqa: E402
from pipeline.tokenize import TextNormalizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=12)
    ap.add_argument("--texts", type=int, default=4_000, help="texts a chunk (the stage's chunk_size)")
    ap.add_argument("--words", type=int, default=50, help="new random words a text")
    ap.add_argument("--max-strings", type=int, default=tokenize.MAX_STRINGS, help="0: never start a new tokenizer")
    args = ap.parse_args()
    tokenize.MAX_STRINGS = args.max_strings or sys.maxsize
    tokenize._init_worker("en", None, TextNormalizer())
    rng = random.Random(0)
    for chunk in range(1, args.chunks + 1):
        texts = [" ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(args.words))
                 for _ in range(args.texts)]
        tokenize._tokenize_chunk(texts)
        print(json.dumps({"chunk": chunk, "new_words": chunk * args.texts * args.words,
                          "vocab_strings": len(tokenize._WORKER["tokenizer"].vocab.strings),
                          "memo_words": len(tokenize._WORKER["memo"].words),
                          "rss_mb": round(psutil.Process().memory_info().rss / 2**20)}), flush=True)


if __name__ == "__main__":
    main()
