"""The stage registry: the one list of stages, what each reads and writes, and its params blocks.

``dvc.yaml`` stays the file users read and edit; ``tests/test_registry.py``
proves it agrees with this list (commands, paths, params, and that every
module a stage imports is one of its deps). The CLI lists its commands from
here and :mod:`pipeline.core.layout` derives every path from it.
"""
from __future__ import annotations

from dataclasses import dataclass

ALL_BLOCKS = ("dataset", "ingest", "tokenize", "vocab", "vectors", "bucket", "shard", "train", "evaluate")


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    out: str | None            # output folder under artifacts/<dataset>/ (None: a fixed path, see layout)
    reads: tuple[str, ...]     # stages whose outputs this one reads (its DVC data deps)
    blocks: tuple[str, ...]    # params blocks whose every key it depends on
    metrics: tuple[str, ...] = ()  # DVC metrics files: artifacts/metrics/<name>.json
    plots: tuple[str, ...] = ()    # DVC plots files: artifacts/plots/<name>.csv
    data: tuple[str, ...] = ()     # package data it reads (DVC deps besides code)
    always_changed: bool = False   # DVC runs it on every repro (its output still stops the cascade)

    @property
    def module(self) -> str:
        """The entry point's module; its ``main`` is the click command."""
        return f"stages.{self.name}"


STAGES: tuple[Stage, ...] = (
    Stage("check", "Check every params block and fingerprint the data files before any work starts.", None, (),
          ALL_BLOCKS, always_changed=True),
    Stage("ingest", "Load a dataset into raw Parquet splits.", "raw", ("check",), ("dataset", "ingest"),
          data=("pipeline/demo_data",)),
    Stage("tokenize", "spaCy-tokenize the raw splits over all cores.", "tokens", ("ingest",), ("tokenize",),
          metrics=("tokenize",)),
    Stage("vocab", "Build the frequency-capped vocabulary.", "vocab", ("tokenize",), ("vocab",), metrics=("vocab",)),
    Stage("vectors", "Train word2vec on the train split (and unlabelled text) to start the embedding from.", "vectors",
          ("tokenize", "vocab"), ("vectors",), metrics=("vectors",)),
    Stage("bucket", "Map tokens to ids, length buckets, padding waste.", "ids", ("tokenize", "vocab"), ("bucket",),
          metrics=("bucket",)),
    Stage("shard", "Write length-sorted Arrow shards and manifest.json.", "shards", ("bucket", "vocab"), ("shard",)),
    Stage("train", "Train the classifier on the shards.", "model", ("shard", "vocab", "vectors"), ("train",),
          metrics=("train",), plots=("train",)),
    Stage("evaluate", "Metrics, plots and report.md.", "eval", ("shard", "vocab", "train", "ingest"), ("evaluate",),
          metrics=("eval",), plots=("confusion",)),
)
BY_NAME = {s.name: s for s in STAGES}
STAGE_NAMES = tuple(s.name for s in STAGES)
# Commands that are not DVC stages.
TOOLS = {"predict": "Classify new text with the trained model (or an exported file).",
         "export": "Write the trained model as one shippable file."}


def stage(name: str) -> Stage:
    return BY_NAME[name]


def edges() -> list[tuple[str, str]]:
    """(upstream, downstream) pairs of the DAG."""
    return [(up, s.name) for s in STAGES for up in s.reads]
