"""`textpipe vectors`: word2vec on the train split's text plus unlabelled corpora (or nothing, with method none)."""
import time

import click

from pipeline.core.layout import stage_dir, vocab_file

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("vectors")
@params_option
def main(params_path: str) -> None:
    """Write artifacts/<dataset>/vectors/ (word2vec text format, vocabulary words only) and manifest.json; seconds
    and coverage to artifacts/metrics/."""
    dataset, cfg = stage_configs(params_path, "vectors")
    from pipeline.vectors import vectors_stage  # after the params check, not at the top: `textpipe vectors --help` stays instant
    start = time.perf_counter()
    stats = vectors_stage(stage_dir(dataset.name, "tokenize"), vocab_file(dataset.name), stage_dir(dataset.name, "vectors"),
                          cfg["vectors"])
    seconds = round(time.perf_counter() - start, 2)
    coverage = {k: stats[k] for k in ("vocab_coverage", "train_token_coverage") if k in stats}  # absent with method none
    write_metrics("vectors", {**coverage, "seconds": seconds})
    echo_json({**{k: stats[k] for k in ("method", "tokens") if k in stats}, **coverage, "seconds": seconds})
