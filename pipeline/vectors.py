"""Stage ``vectors``: word vectors trained on unlabelled text, for the embedding layer.

A few thousand labelled sentences say little about most words; word2vec over a
larger body of unlabelled text from the same domain says more, and the
classifier starts from those vectors instead of random ones. The text is the
dataset's own train split (its tokens, labels unused) plus any files listed in
``vectors.corpora`` (unlabelled: only their text column is read), tokenized with
the settings the tokenize stage recorded. Validation and test text is never
used. Training is gensim's word2vec (skip-gram or CBOW, negative sampling).

``method: word2vec`` is the default, with 10 passes over the text: on the train
split alone it costs seconds to minutes (about 10 on IMDB's 6.1M tokens with one
thread), and it started AG News and IMDB better than random vectors, the demo as
well, and SST-2 level (median of 7 seeds; BENCHMARKS.md). With ``method: none``
the stage only records that; ``train`` then starts from random vectors, or from
``train.vectors`` (a GloVe/word2vec file of your own).

Output contract (``<out>/``)::

    vectors.txt    word2vec text format: a "<words> <dim>" header line, then
                   "<word> <v1> ... <v_dim>" for every vocabulary word the
                   corpus gave a vector, in vocabulary id order
                   (absent when method is none)
    manifest.json  method, dim, words, vocab_sha256 (the vocabulary the rows
                   follow), sha256 of vectors.txt; written last
    stats.json     documents, tokens and skipped empty texts per source,
                   vocabulary words covered, share of training tokens covered
    params.json    the vectors params
"""
from __future__ import annotations

import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .core.config import TokenizeConfig, VectorsConfig
from .core.errors import PipelineError
from .core.fileio import ArrowWriter, iter_arrow, read_json, scratch_dir, sha256_file, write_json
from .core.integrity import sealed_dir, verify_dir
from .sources import FILE_BUILDERS, load_file, separator_hint
from .progress import Heartbeat
from .tokenize import TOKENS_TYPE, ParallelTokenizer
from .vocab import SPECIALS, Vocabulary

ALGORITHMS = {"skipgram": 1, "cbow": 0}
CORPUS_BUILDERS = {**FILE_BUILDERS, ".txt": "text"}
FOLDER_SUFFIXES = tuple(ext for ext in CORPUS_BUILDERS if ext != ".json")
VECTORS_FILE, MANIFEST_FILE = "vectors.txt", "manifest.json"
TOKENS_SCHEMA = pa.schema([("tokens", TOKENS_TYPE)])


# --------------------------------------------------------------------------- corpora


def corpus_files(path: str | Path) -> list[Path]:
    """The readable files a ``vectors.corpora`` entry names: the file itself, or a folder's text files, sorted."""
    path = Path(path)
    if path.is_dir():
        # A folder's .json files are left out: there they are metadata (a dataset's labels.json), not text.
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FOLDER_SUFFIXES)
        if not files:
            raise PipelineError(f"vectors.corpora folder {path} holds no {', '.join(FOLDER_SUFFIXES)} file")
        return files
    if not path.exists():
        raise PipelineError(f"vectors.corpora entry {path} does not exist; list files or folders of unlabelled text")
    if path.suffix.lower() not in CORPUS_BUILDERS:
        raise PipelineError(f"vectors.corpora entry {path}: unreadable file type; use one of {', '.join(CORPUS_BUILDERS)}")
    return [path]


class CorpusText:
    """One corpus file's non-empty texts, in order, a batch at a time; ``read`` counts the rows read so
    far and ``skipped`` the null or blank ones among them. ``.txt`` files are one text per line; tables
    are read as the ingest stage reads them, with ``datasets``' copy of a non-Parquet file in ``cache_dir``."""

    def __init__(self, path: Path, text_column: str, cache_dir: str | Path):
        self.path = path
        self.column = "text" if path.suffix.lower() == ".txt" else text_column
        self.rows = load_file(path, CORPUS_BUILDERS, cache_dir=cache_dir)
        if self.column not in self.rows.column_names:
            if hint := separator_hint(self.rows.column_names, self.column):
                raise PipelineError(f"corpus file {path} has one column, {self.rows.column_names[0]!r}: {hint}")
            raise PipelineError(f"corpus file {path} has no column '{self.column}'; columns are: "
                                f"{', '.join(self.rows.column_names)} (set vectors.text_column)")
        kind = self.rows.schema.field(self.column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise PipelineError(f"column '{self.column}' of corpus file {path} holds {kind}, not text; "
                                "set vectors.text_column")
        self.read = self.skipped = 0

    def __iter__(self) -> Iterator[list[str]]:
        for batch in self.rows.batches([self.column]):
            text = batch.column(0)
            kept = pc.filter(text, pc.fill_null(pc.invert(pc.equal(pc.utf8_trim_whitespace(text), "")), False))
            self.read += len(text)
            self.skipped += len(text) - len(kept)
            yield kept.to_pylist()


def tokenize_corpus(text: CorpusText, tokenizer: ParallelTokenizer, out: Path) -> dict:
    """Tokenize a corpus file's texts into the Arrow file ``out`` (a ``tokens`` column) as they are
    read; return its entry of ``stats.json``'s sources."""
    size = tokenizer.chunk_size
    chunks = (texts[i:i + size] for texts in text for i in range(0, len(texts), size))
    docs = tokens = 0
    what = f"tokenize {text.path.name}"
    beat = Heartbeat(what, text.rows.num_rows)
    with ArrowWriter(out, TOKENS_SCHEMA) as writer, \
            tqdm(total=text.rows.num_rows, desc=what, unit="doc", disable=None) as bar:
        for array in tokenizer.stream(chunks):
            writer.write(pa.table({"tokens": array}))
            docs += len(array)
            tokens += len(pc.list_flatten(array))
            bar.update(text.read - bar.n)  # rows read, blank ones included: a few chunks ahead of those tokenized
            beat.tick(text.read)
    return {"source": str(text.path), "sha256": sha256_file(text.path), "docs": docs, "tokens": tokens,
            "skipped_empty_text": text.skipped}


class TokenStream:
    """A restartable iterable of token lists read from Arrow files a record batch at a time (word2vec
    reads it once to count words and once per epoch), so no corpus is ever held whole."""

    def __init__(self, files: list[Path], rows_per_slice: int = 4096):
        self.files = files
        self.rows_per_slice = rows_per_slice

    def __iter__(self) -> Iterator[list[str]]:
        for path in self.files:
            for batch in iter_arrow(path, ["tokens"]):
                tokens = batch.column(0)
                for start in range(0, len(tokens), self.rows_per_slice):
                    yield from tokens.slice(start, self.rows_per_slice).to_pylist()


def split_source(path: Path) -> dict:
    """The train split's entry of ``stats.json``'s sources: its documents and tokens."""
    docs = tokens = 0
    for batch in iter_arrow(path, ["tokens"]):
        docs += batch.num_rows
        tokens += len(pc.list_flatten(batch.column(0)))
    return {"source": "train split", "docs": docs, "tokens": tokens}


# --------------------------------------------------------------------------- training


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with ``hash(word + seed)``; Python's str hash changes per process."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(sentences: TokenStream, cfg: VectorsConfig) -> Any:
    """gensim ``Word2Vec`` over ``sentences``; a progress bar per epoch. Bit-for-bit repeatable with ``workers: 1``."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    epochs = cfg.epochs
    bar = tqdm(total=epochs, desc="word2vec", unit="epoch", disable=None)

    class _Progress(CallbackAny2Vec):
        def on_epoch_end(self, model: Any) -> None:
            bar.update(1)

    try:
        return Word2Vec(
            sentences, vector_size=cfg.dim, window=cfg.window, min_count=cfg.min_count,
            sg=ALGORITHMS[cfg.algorithm], negative=cfg.negative, epochs=epochs,
            workers=cfg.workers or os.cpu_count() or 1, seed=cfg.seed, hashfxn=_stable_hash,
            callbacks=[_Progress()],
        )
    finally:
        bar.close()


def write_vectors(path: Path, vocab: Vocabulary, keyed: Any) -> int:
    """Write the rows of ``keyed`` (gensim KeyedVectors) for the vocabulary's words, in id order; return how many.

    A word holding a space cannot be written in this format and gets no row.
    """
    words = [w for w in vocab.itos[len(SPECIALS):] if w in keyed.key_to_index and " " not in w]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{len(words)} {keyed.vector_size}\n")
        for word in words:
            f.write(word + " " + " ".join(f"{v:.6f}" for v in keyed[word]) + "\n")
    return len(words)


def vectors_stage(tokens_dir: str | Path, vocab_path: str | Path, out_dir: str | Path, cfg: VectorsConfig) -> dict:
    """Train vectors on the train split's tokens plus ``cfg.corpora``, or record ``method: none``."""
    tokens_dir, vocab_path = Path(tokens_dir), Path(vocab_path)
    if cfg.method == "none":
        with sealed_dir(out_dir) as tmp:
            write_json(tmp / "params.json", {"vectors": cfg.content_params()})
            write_json(tmp / "stats.json", {"method": "none"})
            write_json(tmp / MANIFEST_FILE, {"method": "none"})
        return {"method": "none"}

    verify_dir(tokens_dir, "tokenize")
    verify_dir(vocab_path.parent, "vocab")
    if not (tokens_dir / "train.arrow").exists():
        raise PipelineError(f"{tokens_dir}/train.arrow not found; run `textpipe tokenize` first")
    vocab = Vocabulary.load(vocab_path)
    token_files = [tokens_dir / "train.arrow"]
    sources = [split_source(token_files[0])]
    files = [f for entry in cfg.corpora for f in corpus_files(entry)]
    # the corpora's tokens (and datasets' copies of their files) go to a scratch folder beside the output
    with scratch_dir(out_dir) as scratch:
        if files:
            tok_cfg = TokenizeConfig.from_block(read_json(tokens_dir / "params.json")["tokenize"])
            with ParallelTokenizer.from_config(tok_cfg) as tokenizer:
                for i, path in enumerate(files):
                    token_files.append(scratch / f"corpus-{i}.arrow")
                    with tempfile.TemporaryDirectory(dir=scratch) as cache:
                        sources.append(tokenize_corpus(CorpusText(path, cfg.text_column, cache), tokenizer,
                                                       token_files[-1]))
        model = train_word2vec(TokenStream(token_files), cfg)

    counts = np.array(vocab.counts[len(SPECIALS):], dtype=np.float64)
    has_vector = np.array([w in model.wv.key_to_index for w in vocab.itos[len(SPECIALS):]])
    with sealed_dir(out_dir) as tmp:
        words = write_vectors(tmp / VECTORS_FILE, vocab, model.wv)
        stats = {
            "method": cfg.method, "sources": sources, "tokens": sum(s["tokens"] for s in sources),
            "word2vec_words": len(model.wv), "vocab_words": len(vocab) - len(SPECIALS), "vocab_words_covered": words,
            "vocab_coverage": round(words / max(len(vocab) - len(SPECIALS), 1), 6),
            "train_token_coverage": round(float(counts[has_vector].sum() / max(counts.sum(), 1)), 6),
        }
        write_json(tmp / "params.json", {"vectors": cfg.content_params()})
        write_json(tmp / "stats.json", stats)
        write_json(tmp / MANIFEST_FILE, {
            "method": cfg.method, "dim": cfg.dim, "words": words, "format": "word2vec text",
            "file": VECTORS_FILE, "sha256": sha256_file(tmp / VECTORS_FILE), "vocab_sha256": sha256_file(vocab_path),
        })
    return stats


def trained_vectors(vectors_dir: str | Path | None, vocab_path: str | Path) -> Path | None:
    """The vectors file the vectors stage wrote for this vocabulary, or None when it trained none.

    A folder that does not exist counts as ``method: none`` (the stage was not
    run by hand); a file that does not match its manifest or was built for
    another vocabulary is refused.
    """
    if vectors_dir is None or not (Path(vectors_dir) / MANIFEST_FILE).exists():
        return None
    vectors_dir = Path(vectors_dir)
    verify_dir(vectors_dir, "vectors")
    manifest = read_json(vectors_dir / MANIFEST_FILE)
    if manifest.get("method", "none") == "none":
        return None
    path = vectors_dir / manifest["file"]
    if manifest["vocab_sha256"] != sha256_file(vocab_path):
        raise PipelineError(f"the vectors in {vectors_dir} were built for another vocabulary than {vocab_path}; "
                            "rerun `dvc repro vectors`")
    return path


def pick_vectors(param: str | None, vectors_dir: str | Path | None, vocab_path: str | Path) -> Path | None:
    """The vectors file to start the embedding from: ``train.vectors`` or the vectors stage's output, never both."""
    trained = trained_vectors(vectors_dir, vocab_path)
    if param and trained:
        raise PipelineError(f"train.vectors is set and the vectors stage trained {trained}; keep one: "
                            "set train.vectors: null or vectors.method: none")
    return Path(param) if param else trained


def check_vectors_file(path: str | Path) -> Path:
    """``train.vectors`` as a path, refused (PipelineError) when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"train.vectors file {path} not found; give a GloVe/word2vec text file or null")
    return path


def load_vectors(path: str | Path, vocab: Vocabulary, dim: int) -> tuple[Any, int]:
    """Rows of a GloVe / word2vec text file for the vocabulary as a torch matrix; returns (matrix, words covered)."""
    import torch

    path = check_vectors_file(path)
    weights = torch.empty(len(vocab), dim).normal_(0, 0.1)
    weights[0] = 0
    covered = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: "<count> <dim>"
            if len(parts) != dim + 1:
                raise PipelineError(f"{path}:{lineno} has {len(parts) - 1} values but train.embed_dim is {dim}; "
                                    "make them match (vectors.dim for trained vectors)")
            values = vector_values(path, lineno, parts[1:])
            idx = vocab.stoi.get(parts[0])
            if idx is not None and idx > 1:
                weights[idx] = torch.tensor(values)
                covered += 1
    return weights, covered


def vector_values(path: Path, lineno: int, fields: list[str]) -> list[float]:
    """A vector's numbers, parsed strictly: a field that is not a finite number is one line naming file and line."""
    try:
        values = [float(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not _is_float(v))
        raise PipelineError(f"{path}:{lineno} has {bad[:20]!r} where a number belongs; fix or remove that line") from None
    if not all(math.isfinite(v) for v in values):
        raise PipelineError(f"{path}:{lineno} has a value that is not a finite number (nan or inf); fix or remove that line")
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
