"""`textpipe vocab`: build the frequency-capped vocabulary from the training split."""
import click

from pipeline.vocab import VOCAB_DEFAULTS, vocab_stage
from pipeline.fileio import write_json

from .common import echo_json, metrics_default, params_option, path_or_default, read_blocks, user_errors


@click.command("vocab")
@params_option
@click.option("--tokens", type=click.Path(file_okay=False), help="tokenize output [artifacts/<dataset>/tokens]")
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/vocab]")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="DVC metrics file [artifacts/metrics/vocab.json]")
@user_errors
def main(params_path: str, tokens: str | None, out: str | None, metrics_path: str | None) -> None:
    """Write <out>/vocab.tsv and metrics.json (coverage, % replaced by <unk> per split)."""
    dataset, block = read_blocks(params_path, "vocab", VOCAB_DEFAULTS)
    metrics = vocab_stage(path_or_default(tokens, dataset, "tokenize"), path_or_default(out, dataset, "vocab"), block)
    write_json(metrics_path or metrics_default("vocab"), metrics)
    echo_json({"size": metrics["size"], "unk_rate": {s: m["unk_rate"] for s, m in metrics["splits"].items()}})


if __name__ == "__main__":
    main()
