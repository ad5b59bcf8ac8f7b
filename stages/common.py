"""What every stage entry point shares: the params option and reading the stage's typed configs."""
from __future__ import annotations

import json
from typing import Any

import click

from pipeline.core.config import DatasetConfig, read_block
from pipeline.core.fileio import lock_output, sweep_stale, write_json
from pipeline.core.layout import metrics_file, stage_dir
from pipeline.core.params import PARAMS_FILE, load_params
from pipeline.core.procs import launched
from pipeline.core.registry import STAGES, stage

params_option = click.option(
    "--params", "params_path", default=PARAMS_FILE, show_default=True,
    type=click.Path(dir_okay=False), help="params file; the stage reads `dataset` and its own blocks.",
)


def stage_configs(params_path: str, name: str) -> tuple[DatasetConfig, dict[str, Any]]:
    """(dataset config, {block: typed config}) for the blocks stage ``name`` reads; all checked first.

    Then the stage's output is locked for this process's lifetime, so a second writer of the same
    folder stops with one line instead of racing (torchrun ranks run under their launcher's lock).
    """
    params = load_params(params_path)
    dataset = DatasetConfig.from_block(params.get("dataset"))
    configs = {block: read_block(params, block) for block in stage(name).blocks}
    if not launched():
        lock_output(stage_dir(dataset.name, name))
        for other in STAGES:  # temporaries of killed runs, whichever stage left them
            if other.out:
                sweep_stale(stage_dir(dataset.name, other.name))
    return dataset, configs


def write_metrics(name: str, figures: dict[str, Any]) -> None:
    """The DVC metrics file of a stage (``artifacts/metrics/<name>.json``): only figures a user compares
    across runs (accuracy, macro-F1, loss, OOV, padding waste, tokens/s, seconds); counts and hashes
    stay in the stage's own stats files, so `dvc exp show` and `dvc metrics show` stay readable."""
    write_json(metrics_file(name), figures)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))
