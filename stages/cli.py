"""The `textpipe` console script: one subcommand per stage.

Subcommands are imported only when called, so `textpipe ingest` does not pay
for importing torch and `textpipe --help` is instant.
"""
import importlib

import click

COMMANDS = {
    "ingest": "Load a dataset into raw Parquet splits.",
    "tokenize": "spaCy-tokenize the raw splits over all cores.",
    "vocab": "Build the frequency-capped vocabulary.",
    "vectors": "Train word vectors on unlabelled text (optional).",
    "bucket": "Map tokens to ids, length buckets, padding waste.",
    "shard": "Write length-sorted Arrow shards and manifest.json.",
    "train": "Train the classifier on the shards.",
    "evaluate": "Metrics, plots and report.md.",
    "predict": "Classify new text with the trained model.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"stages.{name}").main

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands (in pipeline order)"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textpipe")
def cli() -> None:
    """textpipe: text-classification preprocessing and training, stage by stage.

    `dvc repro` runs every stage in order; `textpipe <stage>` runs one by hand
    with the same params.yaml.
    """
