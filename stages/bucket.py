"""`textpipe bucket`: map tokens to ids, assign length buckets, report padding waste."""
import click

from pipeline.core.layout import stage_dir, vocab_file

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("bucket")
@params_option
def main(params_path: str) -> None:
    """Write artifacts/<dataset>/ids/ (ids, label, length, bucket per split) and buckets.json."""
    dataset, cfg = stage_configs(params_path, "bucket")
    from pipeline.buckets import bucket_stage  # after the params check, not at the top: `textpipe bucket --help` stays instant
    stats = bucket_stage(stage_dir(dataset.name, "tokenize"), vocab_file(dataset.name), stage_dir(dataset.name, "bucket"),
                         cfg["bucket"])
    write_metrics("bucket", {"padding_waste": {s: m["padding_waste_bucketed"] for s, m in stats["splits"].items()}})
    echo_json({"boundaries": stats["boundaries"],
               "padding_waste": {s: [m["padding_waste_random"], m["padding_waste_bucketed"]] for s, m in stats["splits"].items()}})
