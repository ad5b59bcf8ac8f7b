"""`textpipe tokenize`: spaCy-tokenize the raw splits over all cores."""
import click

from pipeline.core.layout import stage_dir

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("tokenize")
@params_option
def main(params_path: str) -> None:
    """Normalise and tokenize every split into artifacts/<dataset>/tokens/; timings to artifacts/metrics/."""
    dataset, cfg = stage_configs(params_path, "tokenize")
    from pipeline.tokenize import tokenize_dataset  # after the params check, not at the top: `textpipe tokenize --help` stays instant
    stats, timings = tokenize_dataset(stage_dir(dataset.name, "ingest"), stage_dir(dataset.name, "tokenize"), cfg["tokenize"])
    write_metrics("tokenize", {"seconds": timings["seconds"], "tokens_per_s": timings["tokens_per_second"]})
    echo_json({"tokens": stats["tokens"], **timings})
