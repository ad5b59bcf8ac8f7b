"""The typed params blocks: one frozen dataclass per block of ``params.yaml``.

These dataclasses are the only home of default values (``params.yaml`` ships
the same values, which ``tests/test_config.py`` checks field by field). Every
stage builds its config with ``from_block`` before it does any work, so a
wrong type, an out-of-range value or an unsafe ``dataset.name`` stops it with
one ``Error:`` line.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from .errors import PipelineError
from .params import Block, spec
from .schema import SPLITS

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo_data"
DEMO_RECORD = "pipeline/demo_data"  # how artifacts name DEMO_DIR
RESERVED_NAMES = ("metrics", "plots", "check.json")  # what textpipe keeps beside the datasets in artifacts/
SEED = {"ge": 0, "lt": 2**32}  # the range numpy's and gensim's seeds take (torch's is wider)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")

# What a preset dataset name means; keys left null in the dataset block take these values.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"source": "demo", "text_column": "text", "label_column": "label", "labels": ["neg", "pos"]},
    "imdb": {"source": "hub", "path": "stanfordnlp/imdb", "text_column": "text", "label_column": "label",
             "labels": ["neg", "pos"], "splits": {"train": "train", "test": "test"}},
    # The GLUE test split is unlabelled (label -1), so it is not used.
    "sst2": {"source": "hub", "path": "stanfordnlp/sst2", "text_column": "sentence", "label_column": "label",
             "labels": ["negative", "positive"], "splits": {"train": "train", "validation": "validation"}},
    "ag_news": {"source": "hub", "path": "fancyzhx/ag_news", "text_column": "text", "label_column": "label",
                "labels": ["World", "Sports", "Business", "Sci/Tech"], "splits": {"train": "train", "test": "test"}},
}


def check_dataset_name(name: Any) -> str:
    """``dataset.name`` is a folder under ``artifacts/``: letters, digits, ``_``, ``-`` and ``.`` (not first)."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise PipelineError(f"dataset.name {name!r} is not a safe folder name; use letters, digits, '_', '-' and '.' "
                            "(not first), at most 100 characters, e.g. 'imdb' or 'tickets-2024'")
    if name in RESERVED_NAMES:
        raise PipelineError(f"dataset.name {name!r} is taken by artifacts/{name}/; choose another name")
    return name


def check_distinct_columns(columns: dict[str, str | None]) -> None:
    """The text, label and id columns are three columns: two keys naming one column is an error."""
    named = [(key, col) for key, col in columns.items() if col is not None]
    for i, (a, col) in enumerate(named):
        for b, other in named[i + 1:]:
            if col == other:
                raise PipelineError(f"dataset.{a} and dataset.{b} both name the column {col!r}; "
                                    "each must name a column of its own")


@dataclass(frozen=True)
class DataSource:
    """A dataset block with the preset's values filled in for the keys left null."""

    name: str
    source: str
    path: str
    text_column: str
    label_column: str
    id_column: str | None
    labels: list[str] | None
    splits: dict[str, str]
    validation_fraction: float
    test_fraction: float
    seed: int

    def record(self) -> dict:
        """The source as artifacts record it: by what it is, not by where it lives. The shipped demo
        by its place in the package; a folder of files by its name (its content is in raw/ and its
        files' sha256 in check.json). So identical data gives identical bytes in every checkout and
        under every spelling of its path (`../data/x`, `$PWD/../data/x`, a moved copy), and what
        follows ingest is not rerun for it."""
        fields = asdict(self)
        if self.source == "demo":
            fields["path"] = DEMO_RECORD
        elif self.source == "files":
            fields["path"] = os.path.basename(os.path.abspath(self.path))
        return fields

    def check_splits(self, present: Iterable[str], evaluate_split: str) -> None:
        """Refuse, before ingest, a dataset that will lack a split training or evaluation needs:
        ``present`` are the splits it has files for; a missing validation or test split is carved
        from train when its fraction is above 0."""
        fractions = {"validation": self.validation_fraction, "test": self.test_fraction}
        splits = set(present) | {split for split, fraction in fractions.items() if fraction > 0}
        if "validation" not in splits:
            raise PipelineError(f"dataset {self.name} has no validation file and dataset.validation_fraction is 0; "
                                "training needs a validation split (early stopping, the checkpoint it keeps): give a "
                                "validation file or set dataset.validation_fraction > 0")
        if evaluate_split == "test" and "test" not in splits:
            raise PipelineError(f"evaluate.split is test, but dataset {self.name} has no test file and "
                                "dataset.test_fraction is 0; set evaluate.split: auto (or validation), give a test file "
                                "or set dataset.test_fraction > 0")


@dataclass(frozen=True)
class DatasetConfig(Block):
    BLOCK = "dataset"
    name: str = "demo"
    source: Literal["demo", "files", "hub"] | None = None
    path: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None  # optional: your row ids, carried into raw/ and the report's examples
    labels: list[str | int] | None = None
    splits: dict[str, str] | None = None
    validation_fraction: float = spec(0.1, ge=0.0, lt=1.0)
    test_fraction: float = spec(0.0, ge=0.0, lt=1.0)
    seed: int = spec(13, **SEED)

    def validate(self) -> None:
        check_dataset_name(self.name)
        if self.labels is not None:
            names = [str(x) for x in self.labels]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise PipelineError(f"dataset.labels names {', '.join(dupes)} more than once; list each class once, in id order")
        if self.splits is not None:
            bad = sorted(set(self.splits) - set(SPLITS))
            if bad or "train" not in self.splits:
                raise PipelineError(f"dataset.splits maps {', '.join(SPLITS)} to file stems or hub splits and needs "
                                    f"'train'; got {self.splits}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise PipelineError("dataset.validation_fraction + dataset.test_fraction must be < 1 (train needs rows)")

    def resolve(self) -> DataSource:
        """Explicit keys win over the preset named by ``name``, which wins over generic defaults."""
        preset = PRESETS.get(self.name, {})
        merged = {k: (v if v is not None else preset.get(k)) for k, v in self.to_dict().items()}
        source = merged.get("source")
        if not source:
            raise PipelineError(f"dataset '{self.name}' is not a preset ({', '.join(PRESETS)}); "
                                "set dataset.source (files or hub) and dataset.path")
        path = str(DEMO_DIR) if source == "demo" else merged.get("path")
        if not path:
            raise PipelineError(f"dataset.path is required for source '{source}' (a folder or a hub id)")
        splits = merged.get("splits") or {s: s for s in SPLITS}
        check_distinct_columns({"text_column": merged.get("text_column") or "text",
                                "label_column": merged.get("label_column") or "label", "id_column": merged.get("id_column")})
        return DataSource(
            name=self.name, source=source, path=str(path),
            text_column=merged.get("text_column") or "text", label_column=merged.get("label_column") or "label",
            id_column=merged.get("id_column"),
            labels=[str(x) for x in merged["labels"]] if merged.get("labels") else None,
            splits={k: v for k, v in splits.items() if v},
            validation_fraction=self.validation_fraction, test_fraction=self.test_fraction, seed=self.seed,
        )


@dataclass(frozen=True)
class IngestConfig(Block):
    BLOCK = "ingest"
    empty_text: Literal["drop", "keep"] = "drop"  # rows with empty/null text: always counted in stats
    max_rows: int = spec(0, ge=0)  # per split, a reproducible random subset; 0 = all


@dataclass(frozen=True)
class TokenizeConfig(Block):
    BLOCK = "tokenize"
    lang: str = "en"
    spacy_pipeline: str | None = None
    lowercase: bool = True
    strip_html: bool = True
    normalize_whitespace: bool = True
    workers: int = spec(0, ge=0, content=False)  # processes (Ray actors); 0 = all cores (one for under 1 MiB of text)
    chunk_size: int = spec(2000, ge=1, content=False)  # texts per work unit
    engine: Literal["local", "ray"] = spec("local", content=False)  # ray: Ray Data actors (pip install -e '.[ray]')
    ray_address: str | None = spec(None, content=False)  # null: a local Ray ($RAY_ADDRESS wins); or a cluster address
    stall_timeout: float = spec(600.0, gt=0.0, content=False)  # engine ray: seconds without a batch, then one line


@dataclass(frozen=True)
class VocabConfig(Block):
    BLOCK = "vocab"
    min_freq: int = spec(2, ge=1)
    max_size: int = spec(40000, ge=0)  # including <pad> and <unk>; 0 = no cap
    engine: Literal["local", "ray"] = spec("local", content=False)  # ray: a distributed merge of per-batch counts
    ray_address: str | None = spec(None, content=False)
    stall_timeout: float = spec(600.0, gt=0.0, content=False)  # engine ray: seconds without a batch, then one line

    def validate(self) -> None:
        if 0 < self.max_size <= 2:
            raise PipelineError(f"vocab.max_size must exceed 2 (the specials <pad>, <unk>) or be 0 for no cap, got {self.max_size}")


@dataclass(frozen=True)
class VectorsConfig(Block):
    BLOCK = "vectors"
    method: Literal["none", "word2vec"] = "word2vec"
    corpora: list[str] = spec([])
    text_column: str = "text"
    dim: int = spec(128, ge=1)
    algorithm: Literal["skipgram", "cbow"] = "skipgram"
    window: int = spec(5, ge=1)
    min_count: int = spec(2, ge=1)
    negative: int = spec(10, ge=0)
    epochs: int = spec(10, ge=1)  # passes over the text (gensim: 5; 10 did better on small corpora, BENCHMARKS.md)
    workers: int = spec(1, ge=0)  # threads; 1 = bit-for-bit repeatable, 0 = all cores (faster, not repeatable)
    seed: int = spec(0, **SEED)


@dataclass(frozen=True)
class BucketConfig(Block):
    BLOCK = "bucket"
    max_len: int = spec(500, ge=0)  # longer docs keep max_len tokens; 0 = keep all tokens
    keep_head: float = spec(0.25, ge=0.0, le=1.0)  # share of max_len kept from a long doc's start, the rest from its end
    boundaries: int | list[int] = 8  # a number of quantile buckets, or a list of upper bounds
    batch_size: int = spec(32, ge=1)  # batch size of the padding-waste metric
    seed: int = spec(0, **SEED)

    # Params added after artifacts existed, with the value those artifacts were made with: a model
    # trained before keep_head kept the first max_len tokens, and predicts with that rule still.
    RECORDED_BEFORE = {"keep_head": 1.0}

    @classmethod
    def recorded(cls, block: dict | None) -> "BucketConfig":
        """The config an artifact recorded (its params.json / checkpoint), old ones included."""
        return cls.from_block({**cls.RECORDED_BEFORE, **(block or {})})

    def validate(self) -> None:
        b = self.boundaries
        if isinstance(b, int) and b < 1:
            raise PipelineError(f"bucket.boundaries must be a number of buckets >= 1 or a list of lengths, got {b}")
        if isinstance(b, list) and (not b or any(x <= 0 for x in b) or b != sorted(set(b))):
            raise PipelineError(f"bucket.boundaries must be a strictly increasing list of positive lengths, got {b}")


@dataclass(frozen=True)
class ShardConfig(Block):
    BLOCK = "shard"
    shard_size_mb: float = spec(64.0, gt=0.0)


MIN_BATCH_ROWS = 8  # train.min_batches never makes batches smaller than this


@dataclass(frozen=True)
class TrainConfig(Block):
    BLOCK = "train"
    seed: int = spec(1, **SEED)
    epochs: int = spec(8, ge=1)
    max_steps: int = spec(0, ge=0)  # stop after this many optimizer steps; 0 = no limit
    batch_size: int = spec(128, ge=1)  # a cap on rows per batch; max_tokens sets the size
    max_tokens: int = spec(16000, ge=0)  # padded tokens per batch (rows x longest row); 0 = batch_size rows each
    min_batches: int = spec(100, ge=0)  # per epoch: a small train split gets fewer rows a batch (rows_per_batch); 0 = off
    padding_noise: float = spec(0.05, ge=0.0, lt=1.0)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = spec(0.004, gt=0.0)
    weight_decay: float = spec(0.0, ge=0.0)
    clip_grad: float = spec(5.0, ge=0.0)  # max gradient norm; 0 = off
    patience: int = spec(2, ge=0)  # early stopping on validation accuracy; 0 = off
    lr_decay: float = spec(0.5, gt=0.0, le=1.0)  # lr *= this after an epoch without validation gain; 1 = constant
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # over the planned epochs, to 0 at the end
    lr_warmup: float = spec(0.0, ge=0.0, lt=1.0)  # fraction of the planned epochs' steps with a linear warm-up from 0
    resume_every: int = spec(500, ge=0)  # optimizer steps between resume points within an epoch; 0 = epoch ends only
    embed_dim: int = spec(128, ge=1)
    hidden_size: int = spec(128, ge=1)
    num_layers: int = spec(1, ge=1)
    bidirectional: bool = True
    dropout: float = spec(0.3, ge=0.0, lt=1.0)
    word_dropout: float = spec(0.0, ge=0.0, lt=1.0)  # share of tokens whose embedding is zeroed in training
    rnn_type: Literal["lstm", "gru", "rnn"] = "lstm"
    pooling: Literal["last", "max", "mean"] = "max"
    rnn_impl: Literal["auto", "packed", "fused"] = "auto"
    vectors: str | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int = spec(0, ge=0)  # torch CPU threads; 0 = $OMP_NUM_THREADS if set, else all cores
    eval_batch_size: int = spec(256, ge=1)
    nproc: int = spec(1, ge=1)  # processes; > 1 runs the stage under torchrun (DDP: gloo on CPU, nccl on CUDA)
    embedding_grad: Literal["auto", "sparse", "dense"] = "auto"  # sparse: lazy Adam on the rows a batch used
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: training steps' forward pass autocast to bfloat16

    def validate(self) -> None:
        if self.embedding_grad == "sparse" and self.nproc > 1:
            raise PipelineError("train.embedding_grad: sparse runs on one process; with train.nproc > 1 use auto or dense")
        if self.embedding_grad == "sparse" and self.weight_decay > 0:
            raise PipelineError("train.embedding_grad: sparse has no weight decay; set train.weight_decay: 0 or "
                                "train.embedding_grad: dense")

    def rows_per_batch(self, train_rows: int) -> int:
        """The row cap of a training batch: ``batch_size``, lowered for a train split too small to make
        ``min_batches`` batches an epoch (to its rows / ``min_batches``, rounded up, and never below
        ``MIN_BATCH_ROWS``), so a few thousand rows still get enough optimizer steps per epoch. Only
        the row cap changes: ``max_tokens`` still bounds every batch."""
        if not self.min_batches:
            return self.batch_size
        return min(self.batch_size, max(MIN_BATCH_ROWS, -(-int(train_rows) // self.min_batches)))

    def sparse_embedding(self, world_size: int) -> bool:
        """Whether the embedding gets sparse gradients and lazy Adam (see pipeline/optim.py): auto picks
        it on one process without weight decay."""
        if self.embedding_grad == "auto":
            return world_size == 1 and self.weight_decay == 0
        return self.embedding_grad == "sparse"


@dataclass(frozen=True)
class EvaluateConfig(Block):
    BLOCK = "evaluate"
    split: Literal["auto", "test", "validation"] = "auto"
    batch_size: int = spec(256, ge=1)
    examples: int = spec(8, ge=0)
    baseline: bool = True  # also fit a linear bag-of-n-grams model (pipeline/baseline.py) and score it beside the model


BLOCKS: dict[str, type[Block]] = {c.BLOCK: c for c in (
    DatasetConfig, IngestConfig, TokenizeConfig, VocabConfig, VectorsConfig, BucketConfig, ShardConfig,
    TrainConfig, EvaluateConfig)}


def read_block(params: dict[str, Any], name: str) -> Any:
    """The typed config of block ``name`` of a loaded params mapping."""
    return BLOCKS[name].from_block(params.get(name))


def read_all(params: dict[str, Any]) -> dict[str, Any]:
    """Every block checked; unknown blocks are an error (a typo in a block name)."""
    unknown = sorted(str(k) for k in params if k not in BLOCKS)
    if unknown:
        raise PipelineError(f"unknown params block(s) {', '.join(unknown)}; known blocks: {', '.join(BLOCKS)}")
    configs = {name: read_block(params, name) for name in BLOCKS}
    check_across_blocks(configs)
    return configs


def check_across_blocks(configs: dict[str, Any]) -> None:
    """What no block can check alone: trained word vectors start the embedding, so they need its
    size and leave no room for a vectors file of the user's own. (The train stage checks them again
    on the vectors it reads; here a mistake stops before word2vec runs.)"""
    vectors, train = configs["vectors"], configs["train"]
    if vectors.method == "none":
        return
    if vectors.dim != train.embed_dim:
        raise PipelineError(f"vectors.dim ({vectors.dim}) must equal train.embed_dim ({train.embed_dim}): the vectors "
                            "start the embedding; set both to one value")
    if train.vectors:
        raise PipelineError(f"train.vectors is set and vectors.method is {vectors.method}; keep one: "
                            "set train.vectors: null or vectors.method: none")

