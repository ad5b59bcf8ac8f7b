"""The `textpipe` console script: one subcommand per stage."""
import click

from . import bucket, evaluate, ingest, predict, shard, tokenize, train, vocab


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textpipe")
def cli() -> None:
    """textpipe: text-classification preprocessing and training, stage by stage.

    `dvc repro` runs every stage in order; `textpipe <stage>` runs one by hand
    with the same params.yaml.
    """


for module in (ingest, tokenize, vocab, bucket, shard, train, evaluate, predict):
    cli.add_command(module.main)
