"""What every stage entry point shares: the params file option and error reporting."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

import click

from pipeline.datasets import DATASET_DEFAULTS
from pipeline.errors import PipelineError
from pipeline.layout import METRICS_DIR, PLOTS_DIR, stage_dir
from pipeline.params import load_params, stage_block

params_option = click.option(
    "--params", "params_path", default="params.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="params file; the stage reads its own block and `dataset`.",
)


def user_errors(fn: Callable) -> Callable:
    """Show PipelineError as a one-line `Error: ...` with exit status 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            raise click.UsageError(str(exc)) from None

    return wrapper


def read_blocks(params_path: str, stage: str, defaults: dict) -> tuple[dict, dict]:
    """(dataset block, this stage's block) from the params file."""
    params = load_params(params_path)
    if stage not in params and not defaults:
        return stage_block(params, "dataset", DATASET_DEFAULTS), {}
    return stage_block(params, "dataset", DATASET_DEFAULTS), stage_block(params, stage, defaults)


def path_or_default(value: str | None, dataset: dict, stage: str, leaf: str = "") -> Path:
    if value:
        return Path(value)
    base = stage_dir(dataset["name"], stage)
    return base / leaf if leaf else base


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def metrics_default(stage: str) -> Path:
    """Where a stage's DVC metrics file goes when --metrics is not given (as in dvc.yaml)."""
    return METRICS_DIR / f"{stage}.json"


def plots_default(name: str) -> Path:
    """Where a DVC plots CSV goes when its option is not given (as in dvc.yaml)."""
    return PLOTS_DIR / f"{name}.csv"
