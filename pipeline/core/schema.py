"""Facts every artifact shares: the split names and where class names travel.

Each Arrow/Parquet artifact carries the class names (id order) in its schema
metadata under ``textpipe.labels``, so no stage needs another stage's files
to know what a label id means.
"""
from __future__ import annotations

import json
from typing import Any

from .errors import PipelineError

SPLITS = ("train", "validation", "test")
LABELS_KEY = b"textpipe.labels"
# The vocabulary's first two ids, the same in every vocabulary.
PAD, UNK = "<pad>", "<unk>"
SPECIALS = (PAD, UNK)
PAD_ID, UNK_ID = 0, 1


def labels_metadata(names: list[str]) -> dict[bytes, bytes]:
    """Schema metadata that carries the class names."""
    return {LABELS_KEY: json.dumps(names).encode()}


def read_labels(schema: Any) -> list[str]:
    """Class names carried in an artifact's (pyarrow) schema metadata."""
    meta = schema.metadata or {}
    if LABELS_KEY not in meta:
        raise PipelineError("artifact has no class names in its schema metadata; rerun the pipeline from ingest")
    return json.loads(meta[LABELS_KEY])
