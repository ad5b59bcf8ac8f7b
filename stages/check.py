"""`textpipe check`: check every params block before any stage does work."""
from dataclasses import asdict

import click

from pipeline.config import read_all
from pipeline.fileio import write_json
from pipeline.layout import CHECK_FILE
from pipeline.params import load_params

from .common import params_option


@click.command("check")
@params_option
def main(params_path: str) -> None:
    """Check types, ranges, a safe dataset.name and the device; write artifacts/check.json.

    It runs first under `dvc repro`, so a bad value stops the pipeline before
    DVC touches any dataset folder. check.json holds the resolved data source.
    """
    configs = read_all(load_params(params_path))
    source = configs["dataset"].resolve()
    if configs["train"].device not in ("auto", "cpu"):
        from pipeline.checkpoint import pick_device

        pick_device(configs["train"].device)
    write_json(CHECK_FILE, {"source": asdict(source)})
    click.echo(f"params ok: dataset {source.name} ({source.source})")
