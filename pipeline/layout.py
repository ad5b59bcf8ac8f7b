"""Default artifact locations, used when a stage is run by hand without paths.

``dvc.yaml`` always passes paths explicitly; these defaults mirror it so that
``textpipe <stage>`` alone does the same thing as ``dvc repro <stage>``.

Stage outputs live per dataset (``artifacts/<dataset>/<stage dir>``), side by
side. The DVC metrics and plots files are the current experiment's summary and
live at fixed paths (``artifacts/metrics/``, ``artifacts/plots/``), so that
``dvc exp show`` and ``dvc metrics diff`` put every dataset's figures in the
same columns; each experiment keeps its own copy in DVC's cache.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path("artifacts")
METRICS_DIR = ROOT / "metrics"
PLOTS_DIR = ROOT / "plots"
RESERVED_NAMES = ("metrics", "plots")
STAGE_DIRS = {
    "ingest": "raw",
    "tokenize": "tokens",
    "vocab": "vocab",
    "vectors": "vectors",
    "bucket": "ids",
    "shard": "shards",
    "train": "model",
    "evaluate": "eval",
}


def stage_dir(dataset: str, stage: str) -> Path:
    return ROOT / dataset / STAGE_DIRS[stage]


def vocab_file(dataset: str) -> Path:
    return stage_dir(dataset, "vocab") / "vocab.tsv"
