"""`textpipe ingest`: load the dataset named in `dataset` and write raw Parquet splits."""
import click

from pipeline.datasets import INGEST_DEFAULTS, ingest, resolve_dataset

from .common import echo_json, params_option, path_or_default, read_blocks, user_errors


@click.command("ingest")
@params_option
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/raw]")
@user_errors
def main(params_path: str, out: str | None) -> None:
    """Load a dataset (demo, local files or hub id) into <out>/<split>.parquet and stats.json."""
    dataset, block = read_blocks(params_path, "ingest", INGEST_DEFAULTS)
    stats = ingest(resolve_dataset(dataset), path_or_default(out, dataset, "ingest"), block["empty_text"], int(block["max_rows"]))
    echo_json({"rows": stats["rows"], "dropped": stats["dropped"]})


if __name__ == "__main__":
    main()
