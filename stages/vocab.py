"""`textpipe vocab`: build the frequency-capped vocabulary from the training split."""
import functools
import os

import click

from pipeline.core.layout import stage_dir

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("vocab")
@params_option
def main(params_path: str) -> None:
    """Write artifacts/<dataset>/vocab/vocab.tsv and coverage / % <unk> per split."""
    dataset, cfg = stage_configs(params_path, "vocab")
    from pipeline.vocab import vocab_stage  # after the params check, not at the top: `textpipe vocab --help` stays instant
    tokens, out = stage_dir(dataset.name, "tokenize"), stage_dir(dataset.name, "vocab")
    if cfg["vocab"].engine == "ray":
        from pipeline import ray_engine

        with ray_engine.ray_session(cfg["vocab"].ray_address, os.cpu_count() or 1):
            count = functools.partial(ray_engine.count_tokens, stall_timeout=cfg["vocab"].stall_timeout)
            metrics = vocab_stage(tokens, out, cfg["vocab"], count=count)
    else:
        metrics = vocab_stage(tokens, out, cfg["vocab"])
    unk = {s: m["unk_rate"] for s, m in metrics["splits"].items()}
    write_metrics("vocab", {"unk_rate": unk})
    echo_json({"size": metrics["size"], "unk_rate": unk})
