"""Default artifact locations, used when a stage is run by hand without paths.

``dvc.yaml`` always passes paths explicitly; these defaults mirror it so that
``textpipe <stage>`` alone does the same thing as ``dvc repro <stage>``.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path("artifacts")
STAGE_DIRS = {
    "ingest": "raw",
    "tokenize": "tokens",
    "vocab": "vocab",
    "bucket": "ids",
    "shard": "shards",
    "train": "model",
    "evaluate": "eval",
}


def stage_dir(dataset: str, stage: str) -> Path:
    return ROOT / dataset / STAGE_DIRS[stage]


def vocab_file(dataset: str) -> Path:
    return stage_dir(dataset, "vocab") / "vocab.tsv"
