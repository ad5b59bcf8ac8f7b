"""Regenerate the demo corpus shipped in pipeline/demo_data/.

The demo corpus is a small, synthetic, two-class review corpus written for this
project so that `dvc repro` runs offline on a fresh machine. It is not a
benchmark: it exists to exercise every stage quickly. Run:

    python tools/make_demo_corpus.py

The output is deterministic (fixed seed), so the committed files never drift.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = [
    "the film", "this movie", "the plot", "the acting", "the soundtrack", "the ending",
    "the camera work", "the script", "the lead actor", "the director's cut", "the pacing",
    "the dialogue", "the cast", "the sequel", "the first hour", "the special effects",
]
POSITIVE = [
    "wonderful", "brilliant", "moving", "delightful", "superb", "gripping", "charming",
    "excellent", "memorable", "beautiful", "funny", "clever", "heartfelt", "stunning",
]
NEGATIVE = [
    "boring", "awful", "dull", "clumsy", "terrible", "predictable", "tedious", "painful",
    "forgettable", "messy", "lifeless", "silly", "bland", "dreadful",
]
INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "very ", "absolutely ", "rather "]
OPENERS = [
    "", "", "Honestly, ", "I think ", "In my opinion ", "Frankly, ", "To be fair, ",
    "After two viewings, ", "My friends agreed: ",
]
VERDICTS_POS = [
    "I would watch it again.", "Highly recommended.", "Worth every minute.",
    "I left the cinema smiling.", "A must see.", "Ten out of ten.",
]
VERDICTS_NEG = [
    "I want my money back.", "Skip it.", "A waste of an evening.",
    "I nearly fell asleep.", "Avoid at all costs.", "Two out of ten.",
]
FILLER = [
    "We saw it on a Sunday afternoon.", "The theatre was half empty.",
    "It runs for almost two hours.", "It is based on a novel.",
    "The trailer gave away a lot.", "My sister chose it.", "",
]


def sentence(rng: random.Random, positive: bool) -> str:
    """One clause whose polarity is `positive`, sometimes expressed through negation."""
    subject = rng.choice(SUBJECTS)
    negate = rng.random() < 0.3
    # "not boring" reads positive, "not wonderful" reads negative.
    pool = NEGATIVE if positive == negate else POSITIVE
    word = rng.choice(pool)
    adverb = "" if negate else rng.choice(INTENSIFIERS)
    core = f"{subject} was {'not ' if negate else ''}{adverb}{word}"
    return (rng.choice(OPENERS) + core).strip().capitalize() + "."


def review(rng: random.Random, positive: bool) -> str:
    parts = [sentence(rng, positive) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.25:
        # A contrasting clause makes some reviews harder than a bag of words.
        parts.append("Sadly, " + sentence(rng, not positive).lower() if positive
                     else "Admittedly, " + sentence(rng, not positive).lower())
        parts.append(sentence(rng, positive))
    parts.append(rng.choice(FILLER))
    parts.append(rng.choice(VERDICTS_POS if positive else VERDICTS_NEG))
    sep = " <br /><br />" if rng.random() < 0.2 else " "
    return sep.join(p for p in parts if p)


def write_split(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            positive = i % 2 == 0
            f.write(json.dumps({"text": review(rng, positive), "label": "pos" if positive else "neg"}) + "\n")


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "pipeline" / "demo_data"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261122)
    write_split(out / "train.jsonl", 1600, rng)
    write_split(out / "test.jsonl", 400, rng)


if __name__ == "__main__":
    main()
