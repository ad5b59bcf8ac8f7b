"""`textpipe shard`: write length-sorted Arrow IPC shards and manifest.json."""
import click

from pipeline.core.layout import stage_dir, vocab_file

from .common import echo_json, params_option, stage_configs


@click.command("shard")
@params_option
def main(params_path: str) -> None:
    """Write artifacts/<dataset>/shards/<split>-NNNNN.arrow, then manifest.json last."""
    dataset, cfg = stage_configs(params_path, "shard")
    from pipeline.shards import shard_stage  # after the params check, not at the top: `textpipe shard --help` stays instant
    manifest = shard_stage(stage_dir(dataset.name, "bucket"), vocab_file(dataset.name), stage_dir(dataset.name, "shard"),
                           cfg["shard"])
    echo_json({s: {"rows": i["rows"], "shards": len(i["shards"])} for s, i in manifest["splits"].items()})
