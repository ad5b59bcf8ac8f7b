"""`textpipe shard`: write length-sorted Arrow IPC shards and manifest.json."""
import click

from pipeline.shards import SHARD_DEFAULTS, shard_stage

from .common import echo_json, params_option, path_or_default, read_blocks, user_errors


@click.command("shard")
@params_option
@click.option("--ids", type=click.Path(file_okay=False), help="bucket output [artifacts/<dataset>/ids]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary [artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/shards]")
@user_errors
def main(params_path: str, ids: str | None, vocab: str | None, out: str | None) -> None:
    """Write <out>/<split>-NNNNN.arrow shards, then <out>/manifest.json last."""
    dataset, block = read_blocks(params_path, "shard", SHARD_DEFAULTS)
    manifest = shard_stage(path_or_default(ids, dataset, "bucket"), path_or_default(vocab, dataset, "vocab", "vocab.tsv"),
                           path_or_default(out, dataset, "shard"), block)
    echo_json({s: {"rows": i["rows"], "shards": len(i["shards"])} for s, i in manifest["splits"].items()})


if __name__ == "__main__":
    main()
