"""`textpipe ingest`: load the dataset named in `dataset` and write raw Parquet splits."""
import click

from pipeline.core.layout import stage_dir

from .common import echo_json, params_option, stage_configs


@click.command("ingest")
@params_option
def main(params_path: str) -> None:
    """Load a dataset (demo, local files or hub id) into artifacts/<dataset>/raw/."""
    dataset, cfg = stage_configs(params_path, "ingest")
    from pipeline.ingest import ingest  # after the params check, not at the top: `textpipe ingest --help` stays instant
    stats = ingest(dataset.resolve(), stage_dir(dataset.name, "ingest"), cfg["ingest"])
    echo_json({"rows": stats["rows"], "dropped": stats["dropped"]})
