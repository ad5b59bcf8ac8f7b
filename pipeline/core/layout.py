"""Where every artifact lives, derived from the stage registry.

Stage outputs live per dataset (``artifacts/<dataset>/<stage out>``), side by
side. The DVC metrics and plots files are the current experiment's summary
and live at fixed paths (``artifacts/metrics/``, ``artifacts/plots/``), so
``dvc exp show`` and ``dvc metrics diff`` put every dataset's figures in the
same columns; each experiment keeps its own copy in DVC's cache. The check
stage's stamp is at a fixed path too: it is written before ``dataset.name``
is known to be safe to use in a path.

``dataset`` is always a name already checked by
:func:`pipeline.core.config.check_dataset_name`, so no path here leaves ``artifacts/``.
"""
from __future__ import annotations

from pathlib import Path

from .registry import stage

ROOT = Path("artifacts")
METRICS_DIR = ROOT / "metrics"
PLOTS_DIR = ROOT / "plots"
CHECK_FILE = ROOT / "check.json"
HASH_CACHE = ROOT / ".cache" / "file-hashes.json"  # stat facts -> sha256 of dataset files; not a DVC output
VOCAB_FILE = "vocab.tsv"
MODEL_FILE = "model.pt"


def stage_dir(dataset: str, name: str) -> Path:
    """The output of stage ``name`` for ``dataset`` (the check stage: its stamp file)."""
    out = stage(name).out
    return ROOT / dataset / out if out else CHECK_FILE


def vocab_file(dataset: str) -> Path:
    return stage_dir(dataset, "vocab") / VOCAB_FILE


def model_file(dataset: str) -> Path:
    return stage_dir(dataset, "train") / MODEL_FILE


def resume_dir(dataset: str) -> Path:
    """Training's resume point: not a DVC output (a persisted out would disable the run-cache)."""
    return ROOT / dataset / "resume"


def metrics_file(name: str) -> Path:
    return METRICS_DIR / f"{name}.json"


def plots_file(name: str) -> Path:
    return PLOTS_DIR / f"{name}.csv"
