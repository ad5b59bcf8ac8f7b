"""The vectors stage: corpora reading, word2vec training, and the train stage picking the vectors up."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.core.errors import PipelineError
from pipeline.core.integrity import seal
from pipeline.core.fileio import read_json, sha256_file, write_arrow, write_json
from pipeline.core.config import TokenizeConfig, TrainConfig, VectorsConfig
from pipeline.train import Trainer
from pipeline.vectors import CorpusText, corpus_files, trained_vectors, vectors_stage
from pipeline.vocab import Vocabulary, build_vocab


FRUIT = ["apple", "banana", "cherry", "grape"]
VEHICLES = ["car", "truck", "bus", "train"]
W2V = {"method": "word2vec", "dim": 16, "epochs": 5, "workers": 1, "seed": 3, "window": 3}


def vec(**overrides):
    return VectorsConfig.from_block({**W2V, **overrides})


def tokens_dir(root, docs):
    """A tokenize-stage output holding ``docs`` as the train split, and its vocabulary (min_freq 1)."""
    tokens = pa.array(docs, pa.list_(pa.string()))
    (root / "tokens").mkdir(parents=True)
    write_arrow(pa.table({"tokens": tokens, "label": pa.array([0] * len(docs), pa.int64())}), root / "tokens" / "train.arrow")
    write_json(root / "tokens" / "params.json", {"tokenize": TokenizeConfig().content_params()})
    (root / "vocab").mkdir()
    build_vocab(pa.chunked_array([tokens]), min_freq=1).save(root / "vocab" / "vocab.tsv")
    seal(root / "tokens")
    seal(root / "vocab")
    return root / "tokens", root / "vocab" / "vocab.tsv"


def topic_docs(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.choice(FRUIT if i % 2 else VEHICLES, 8)) for i in range(n)] + [["zebra"]]


def read_vectors(path):
    lines = path.read_text().splitlines()
    rows = {line.split(" ")[0]: np.array(line.split(" ")[1:], dtype=float) for line in lines[1:]}
    return lines[0], rows


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_corpus_files_and_text_of_every_format(tmp_path):
    folder = tmp_path / "corpora"
    folder.mkdir()
    (folder / "a.txt").write_text("first line\n\n  \nsecond line\n")
    (folder / "b.csv").write_text('body,other\n"one, two",x\n,y\nthree,z\n')
    (folder / "c.jsonl").write_text('{"body": "four"}\n{"body": null}\n')
    pq.write_table(pa.table({"body": ["five", "six", ""]}), folder / "d.parquet")
    (folder / "notes.md").write_text("ignored: not a corpus type")
    (folder / "labels.json").write_text('["neg", "pos"]')  # a dataset folder's metadata, not text
    files = corpus_files(folder)
    assert [f.name for f in files] == ["a.txt", "b.csv", "c.jsonl", "d.parquet"]
    texts = [CorpusText(f, "body", tmp_path / "cache") for f in files]
    got = [([t for batch in text for t in batch], text.read, text.skipped) for text in texts]
    assert got == [(["first line", "second line"], 4, 2), (["one, two", "three"], 3, 1), (["four"], 2, 1),
                   (["five", "six"], 3, 1)]
    with pytest.raises(PipelineError, match="has no column 'text'; columns are: body, other"):
        CorpusText(folder / "b.csv", "text", tmp_path / "cache")
    (tmp_path / "semi.tsv").write_text("id;body\n1;seven\n")
    with pytest.raises(PipelineError, match=r"^corpus file \S+semi.tsv has one column, 'id;body': its file looks "
                                            "';'-separated, but .csv is read as comma-separated"):
        CorpusText(tmp_path / "semi.tsv", "body", tmp_path / "cache")
    with pytest.raises(PipelineError, match="does not exist"):
        corpus_files(tmp_path / "missing.txt")
    with pytest.raises(PipelineError, match="unreadable file type"):
        corpus_files(folder / "notes.md")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="holds no"):
        corpus_files(tmp_path / "empty")


def test_word2vec_vectors_follow_the_vocabulary_and_learn_cooccurrence(tmp_path):
    tokens, vocab_path = tokens_dir(tmp_path, topic_docs())
    stats = vectors_stage(tokens, vocab_path, tmp_path / "vec", vec())
    vocab = Vocabulary.load(vocab_path)
    header, rows = read_vectors(tmp_path / "vec" / "vectors.txt")
    # "zebra" occurs once, below min_count 2: the only vocabulary word without a vector.
    assert header == "8 16"
    assert list(rows) == [w for w in vocab.itos[2:] if w != "zebra"]
    assert stats["vocab_words"] == 9 and stats["vocab_words_covered"] == 8
    assert stats["train_token_coverage"] == round(12000 / 12001, 6)
    assert stats["sources"] == [{"source": "train split", "docs": 1501, "tokens": 12001}]
    manifest = read_json(tmp_path / "vec" / "manifest.json")
    assert manifest["sha256"] == sha256_file(tmp_path / "vec" / "vectors.txt")
    assert manifest["vocab_sha256"] == sha256_file(vocab_path) and manifest["dim"] == 16
    within = np.mean([cosine(rows[a], rows[b]) for g in (FRUIT, VEHICLES) for a in g for b in g if a < b])
    across = np.mean([cosine(rows[a], rows[b]) for a in FRUIT for b in VEHICLES])
    assert within > across + 0.3, (within, across)
    # One worker and a seed: the same file again.
    vectors_stage(tokens, vocab_path, tmp_path / "vec2", vec())
    assert sha256_file(tmp_path / "vec2" / "vectors.txt") == manifest["sha256"]


def test_corpora_are_tokenized_like_the_dataset_and_counted(tmp_path):
    tokens, vocab_path = tokens_dir(tmp_path, topic_docs(400))
    corpus = tmp_path / "more.txt"
    corpus.write_text("The ZEBRA runs\n\nA zebra<br />sleeps\n")  # lowercased, HTML stripped as tokenize params say
    stats = vectors_stage(tokens, vocab_path, tmp_path / "vec", vec(corpora=[str(corpus)]))
    assert stats["sources"][1] == {"source": str(corpus), "sha256": sha256_file(corpus), "docs": 2, "tokens": 6,
                                   "skipped_empty_text": 1}
    assert stats["vocab_words_covered"] == 9  # zebra: once in train + twice in the corpus
    _, rows = read_vectors(tmp_path / "vec" / "vectors.txt")
    assert "zebra" in rows and "runs" not in rows  # only vocabulary words are written


def test_corpora_stream_through_scratch_token_files_in_order(tmp_path, monkeypatch):
    """A corpus of 20,000 rows in one Parquet row group is tokenized a batch at a time into a token
    file in a scratch folder beside the output; word2vec reads the train split's tokens, then the
    corpus's, in order, from the files (as often as it likes); the scratch folder is gone after."""
    from pipeline import vectors

    tokens, vocab_path = tokens_dir(tmp_path, topic_docs(50))
    texts = ["" if i % 1000 == 7 else f"Doc {i} says <b>hello</b>" for i in range(20_000)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "big.parquet")
    seen = {}
    real = vectors.train_word2vec

    def capture(sentences, cfg):
        seen["scratch"] = [p.name for p in tmp_path.iterdir() if p.name.startswith(".vec.")]
        seen["files"] = [p.name for p in sentences.files]
        seen["first"], seen["again"] = list(sentences), list(sentences)
        return real(sentences, cfg)

    monkeypatch.setattr(vectors, "train_word2vec", capture)
    stats = vectors_stage(tokens, vocab_path, tmp_path / "vec", vec(corpora=[str(tmp_path / "big.parquet")], epochs=1))
    kept = [f"doc {i} says hello".split() for i, t in enumerate(texts) if t]  # lowercased, tags stripped
    assert stats["sources"][1] == {"source": str(tmp_path / "big.parquet"), "sha256": sha256_file(tmp_path / "big.parquet"),
                                   "docs": 19_980, "tokens": 4 * 19_980, "skipped_empty_text": 20}
    assert seen["first"] == topic_docs(50) + kept and seen["again"] == seen["first"]
    assert seen["files"] == ["train.arrow", "corpus-0.arrow"] and len(seen["scratch"]) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".vec.")] == []


def test_bad_vectors_params_are_one_line_errors(tmp_path):
    tokens, vocab_path = tokens_dir(tmp_path, topic_docs(10))
    with pytest.raises(PipelineError, match="^vectors.method must be one of none, word2vec, got 'glove'"):
        vec(method="glove")
    with pytest.raises(PipelineError, match="^vectors.algorithm must be one of skipgram, cbow, got 'sg'"):
        vec(algorithm="sg")
    with pytest.raises(PipelineError, match=r"^vectors.corpora must be a list of texts, got 'nope.txt'"):
        vec(corpora="nope.txt")
    with pytest.raises(PipelineError, match="vectors.corpora entry .* does not exist"):
        vectors_stage(tokens, vocab_path, tmp_path / "v", vec(corpora=["nope.txt"]))


def test_train_starts_from_the_stage_vectors(demo, tmp_path):
    vocab_path = demo / "vocab" / "vocab.tsv"
    none = vectors_stage(demo / "tokens", vocab_path, tmp_path / "none", VectorsConfig(method="none"))
    assert none == {"method": "none"} and not (tmp_path / "none" / "vectors.txt").exists()
    assert trained_vectors(tmp_path / "none", vocab_path) is None
    assert trained_vectors(tmp_path / "absent", vocab_path) is None

    vectors_stage(demo / "tokens", vocab_path, tmp_path / "vec", vec())
    _, rows = read_vectors(tmp_path / "vec" / "vectors.txt")
    config = {"embed_dim": 16, "hidden_size": 8, "epochs": 1, "max_steps": 2, "seed": 1}
    trainer = Trainer(demo / "shards", vocab_path, tmp_path / "model", TrainConfig(**config), vectors_dir=tmp_path / "vec")
    vocab = trainer.vocab
    for word in ("the", "was", "popcorn"):
        assert torch.allclose(trainer.model.embedding.weight[vocab.stoi[word]], torch.tensor(rows[word], dtype=torch.float32))
    trainer.fit()
    stats = json.loads((tmp_path / "model" / "stats.json").read_text())
    assert stats["vectors"] == str(tmp_path / "vec" / "vectors.txt") and stats["vectors_covered"] == len(rows)

    with pytest.raises(PipelineError, match="train.vectors is set and the vectors stage trained"):
        Trainer(demo / "shards", vocab_path, tmp_path / "m2", TrainConfig(**config, vectors="glove.txt"), vectors_dir=tmp_path / "vec")
    with pytest.raises(PipelineError, match=r"has 16 values but train.embed_dim is 32; .*vectors.dim"):
        Trainer(demo / "shards", vocab_path, tmp_path / "m2", TrainConfig(**{**config, "embed_dim": 32}), vectors_dir=tmp_path / "vec")


def test_vectors_of_another_vocabulary_or_edited_are_refused(demo, tmp_path):
    vocab_path = demo / "vocab" / "vocab.tsv"
    vectors_stage(demo / "tokens", vocab_path, tmp_path / "vec", vec(epochs=1))
    other = tmp_path / "other.tsv"
    other.write_text(vocab_path.read_text() + "extra\t1\n")
    with pytest.raises(PipelineError, match="built for another vocabulary.*rerun `dvc repro vectors`"):
        trained_vectors(tmp_path / "vec", other)
    with open(tmp_path / "vec" / "vectors.txt", "a") as f:
        f.write("x" + " 0" * 16 + "\n")
    with pytest.raises(PipelineError, match=r"vec/vectors.txt has \d+ bytes, not the \d+ it was written with .*dvc repro -f vectors"):
        trained_vectors(tmp_path / "vec", vocab_path)
