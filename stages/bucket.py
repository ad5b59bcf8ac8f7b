"""`textpipe bucket`: map tokens to ids, assign length buckets, report padding waste."""
import click

from pipeline.buckets import BUCKET_DEFAULTS, bucket_stage
from pipeline.fileio import write_json

from .common import echo_json, metrics_default, params_option, path_or_default, read_blocks, user_errors


@click.command("bucket")
@params_option
@click.option("--tokens", type=click.Path(file_okay=False), help="tokenize output [artifacts/<dataset>/tokens]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary [artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/ids]")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="DVC metrics file [artifacts/metrics/bucket.json]")
@user_errors
def main(params_path: str, tokens: str | None, vocab: str | None, out: str | None, metrics_path: str | None) -> None:
    """Write <out>/<split>.arrow (ids, label, length, bucket), buckets.json and metrics.json."""
    dataset, block = read_blocks(params_path, "bucket", BUCKET_DEFAULTS)
    stats = bucket_stage(path_or_default(tokens, dataset, "tokenize"), path_or_default(vocab, dataset, "vocab", "vocab.tsv"),
                         path_or_default(out, dataset, "bucket"), block)
    write_json(metrics_path or metrics_default("bucket"), stats)
    echo_json({"boundaries": stats["boundaries"],
               "padding_waste": {s: [m["padding_waste_random"], m["padding_waste_bucketed"]] for s, m in stats["splits"].items()}})


if __name__ == "__main__":
    main()
