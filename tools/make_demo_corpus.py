"""Regenerate the demo corpus shipped in pipeline/demo_data/.

The demo corpus is a small, synthetic, two-class (pos/neg) movie-review corpus
written for this project, so that `dvc repro` runs offline on a fresh machine in
about a minute. It is built to behave like real review data rather than a puzzle
with one answer:

- sentiment is spread through varied sentences (praise, complaints, negation,
  "what a ... film", "I loved it", "the plot made no sense"), not decided by a
  fixed closing verdict;
- a third of the reviews are mixed (both polarities, the label goes with the
  majority or with a closing "overall" sentence, which is often absent) or
  hedged ("decent but forgettable", "not bad at all");
- reviews run from one short sentence to ten, with neutral filler and some HTML
  line breaks, so length bucketing and `strip_html` have work to do;
- 5% of labels are flipped (annotator noise) and a few texts repeat.

A model trained on it lands around 85-95% accuracy (BENCHMARKS.md has the
figure), so the report shows real misclassified examples and moving curves. Run:

    python tools/make_demo_corpus.py

The output is deterministic (fixed seed), so the committed files never drift.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

TRAIN_ROWS, TEST_ROWS = 2400, 600
LABEL_NOISE = 0.05
SEED = 20261125

NOUNS = ["film", "movie", "picture", "story", "sequel", "comedy", "thriller", "drama", "documentary"]
ASPECTS = [
    "the plot", "the acting", "the script", "the soundtrack", "the ending", "the cast", "the pacing",
    "the dialogue", "the lead actor", "the lead actress", "the camera work", "the special effects",
    "the story", "the direction", "the first hour", "the final act", "the score", "the main character",
    "the villain", "the humour", "the editing", "the costume design",
]
GOOD = [
    "wonderful", "brilliant", "moving", "delightful", "superb", "gripping", "charming", "excellent",
    "memorable", "beautiful", "funny", "clever", "heartfelt", "stunning", "great", "lovely", "touching",
    "fantastic", "powerful", "smart", "inventive", "warm", "terrific", "magnificent",
]
BAD = [
    "boring", "awful", "dull", "clumsy", "terrible", "predictable", "tedious", "painful", "forgettable",
    "messy", "lifeless", "silly", "bland", "dreadful", "weak", "flat", "confusing", "lazy", "stupid",
    "pointless", "horrible", "annoying", "shallow", "poor",
]
# "good" adjectives on their own are praise; "mild" ones are faint praise, used by hedged reviews.
MILD_GOOD = ["decent", "pleasant", "watchable", "solid", "fine", "enjoyable", "nice"]
MILD_BAD = ["uneven", "slow", "long", "thin", "odd", "patchy", "mediocre"]
DEGREE = ["", "", "", "really ", "truly ", "quite ", "very ", "absolutely ", "so ", "incredibly "]
OPENERS = ["", "", "", "", "Honestly, ", "I think ", "Frankly, ", "To be fair, ", "In the end ", "For me "]

POSITIVE = [
    "What a {good} {noun}.", "What a {good} {noun}!", "{aspect} was {degree}{good}.", "I loved {aspect}.",
    "I loved it.", "A {good} {noun}, I loved it.", "{aspect} made me laugh out loud.",
    "{aspect} kept me hooked until the end.", "I would happily watch it again.", "Easily the best {noun} this year.",
    "{aspect} was not {bad} at all.", "Everything about {aspect} works.", "It deserves every award it gets.",
    "I was smiling the whole time.", "{aspect} is {degree}{good} and {good2}.", "A {degree}{good} {noun}.",
    "{aspect} had real heart.", "The whole cast clearly had fun.", "It made me cry, in a good way.",
    "I recommend it to everyone.", "{aspect} never missed a beat.", "Not a single dull moment.",
    "{aspect} was a joy to watch.", "This is what cinema is for.", "I enjoyed every minute of it.",
    "{aspect} surprised me in the best way.", "Ten out of ten.", "Worth the ticket.", "Highly recommended.",
    "A must see.", "A {good}, {good2} {noun}.", "One of the best things I have seen this year.",
]
NEGATIVE = [
    "What a {bad} {noun}.", "What a mess.", "{aspect} was {degree}{bad}.", "I hated {aspect}.", "I hated it.",
    "The plot made no sense.", "{aspect} made no sense.", "A {bad} {noun}, I hated it.",
    "{aspect} fell flat.", "I kept checking my watch.", "I want my money back.", "Easily the worst {noun} this year.",
    "{aspect} was not {good} at all.", "Nothing about {aspect} works.", "One of the worst things I have seen this year.",
    "I nearly fell asleep.", "{aspect} is {degree}{bad} and {bad2}.", "A {degree}{bad} {noun}.",
    "{aspect} had no heart.", "The whole cast looked bored.", "I walked out after an hour.",
    "Do not waste your evening on it.", "{aspect} ruined it for me.", "Not a single good moment.",
    "{aspect} was a chore to sit through.", "Two out of ten.", "Skip it.", "{aspect} was an insult.",
    "Avoid at all costs.", "A waste of an evening.", "A {bad}, {bad2} {noun}.",
]
MILD_POSITIVE = [
    "{aspect} was {mild_good}.", "Not bad at all.", "It was better than I expected.", "A {mild_good} {noun}.",
    "{aspect} was {mild_good}, if not {good}.", "It has its flaws, but I liked it.", "Pretty good overall.",
]
MILD_NEGATIVE = [
    "{aspect} was {mild_bad}.", "It was fine, I suppose, but forgettable.", "Not as good as I hoped.",
    "A {mild_bad} {noun}.", "{aspect} was {mild_good}, but that is all.", "It had its moments, but not many.",
    "Not terrible, not good either.", "I expected more.",
]
CLOSERS_POS = ["Overall, I enjoyed it.", "On balance, worth seeing.", "Still, a good {noun}.", "I liked it in the end."]
CLOSERS_NEG = ["Overall, a letdown.", "On balance, skip it.", "Still, a poor {noun}.", "I did not like it in the end."]
FILLER = [
    "We saw it on a Sunday afternoon.", "The theatre was half empty.", "It runs for almost two hours.",
    "It is based on a novel.", "The trailer gave away a lot.", "My sister chose it.", "I watched it on a plane.",
    "It is the director's third {noun}.", "I went in knowing nothing about it.", "It opened last Friday.",
    "The popcorn was cold.", "I saw the original years ago.",
]


def fill(rng: random.Random, template: str) -> str:
    (good, good2), (bad, bad2) = rng.sample(GOOD, 2), rng.sample(BAD, 2)
    text = template.format(
        noun=rng.choice(NOUNS), aspect=rng.choice(ASPECTS), good=good, good2=good2, bad=bad, bad2=bad2,
        mild_good=rng.choice(MILD_GOOD), mild_bad=rng.choice(MILD_BAD), degree=rng.choice(DEGREE))
    if text[0].islower() or rng.random() < 0.15:
        opener = rng.choice(OPENERS)
        if opener and not text.startswith(("I ", "I'")):
            text = text[0].lower() + text[1:]
        text = opener + text
    return text[0].upper() + text[1:]


def polar(rng: random.Random, positive: bool) -> str:
    """One sentence of one polarity; most describe something with an adjective, as reviews do."""
    templates = POSITIVE if positive else NEGATIVE
    slot = "{good}" if positive else "{bad}"
    wanted = rng.random() < 0.6
    return fill(rng, rng.choice([t for t in templates if (slot in t) == wanted]))


def review(rng: random.Random, positive: bool) -> str:
    """One review whose true sentiment is `positive` (before label noise)."""
    kind = rng.random()
    if kind < 0.62:  # clear: one to four sentences of one polarity
        parts = [polar(rng, positive) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))]
    elif kind < 0.85:  # mixed: both polarities, the majority (or a closing verdict) decides
        major, minor = rng.choice([(2, 1), (3, 1), (3, 2), (2, 2), (1, 1)])
        parts = [polar(rng, positive) for _ in range(major)] + [polar(rng, not positive) for _ in range(minor)]
        rng.shuffle(parts)
        if major == minor or rng.random() < 0.4:
            parts.append(fill(rng, rng.choice(CLOSERS_POS if positive else CLOSERS_NEG)))
    else:  # hedged: faint praise or faint criticism, sometimes with one strong sentence
        parts = [fill(rng, rng.choice(MILD_POSITIVE if positive else MILD_NEGATIVE)) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.3:
            parts.append(polar(rng, positive))
        rng.shuffle(parts)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
        parts.insert(rng.randrange(len(parts) + 1), fill(rng, rng.choice(FILLER)))
    sep = " <br /><br />" if rng.random() < 0.15 else " "
    return sep.join(parts)


def rows(count: int, rng: random.Random):
    seen: dict[bool, list[str]] = {True: [], False: []}
    for i in range(count):
        positive = i % 2 == 0
        # a few texts repeat (reposted reviews), as in real scraped data
        text = rng.choice(seen[positive]) if seen[positive] and rng.random() < 0.01 else review(rng, positive)
        seen[positive].append(text)
        noisy = rng.random() < LABEL_NOISE
        yield {"text": text, "label": "pos" if positive != noisy else "neg"}


def write_split(path: Path, count: int, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows(count, rng):
            f.write(json.dumps(row) + "\n")


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "pipeline" / "demo_data"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    write_split(out / "train.jsonl", TRAIN_ROWS, rng)
    write_split(out / "test.jsonl", TEST_ROWS, rng)


if __name__ == "__main__":
    main()
