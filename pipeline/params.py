"""Reading ``params.yaml``.

Each stage reads only its own block (and ``dataset``); ``dvc.yaml`` lists the
same keys, so DVC reruns a stage exactly when a value it reads changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import PipelineError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise PipelineError(f"params file {p} not found; run from the project folder or pass --params")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"params file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"params file {p} must be a mapping of stage blocks")
    return data


def stage_block(params: dict[str, Any], name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Return block ``name`` merged over ``defaults``; unknown keys are an error (typos)."""
    block = params.get(name) or {}
    if not isinstance(block, dict):
        raise PipelineError(f"params block '{name}' must be a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(defaults))
    if unknown:
        raise PipelineError(
            f"unknown key(s) in params block '{name}': {', '.join(unknown)}; known keys: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **block}
