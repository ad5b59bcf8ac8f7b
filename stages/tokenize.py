"""`textpipe tokenize`: spaCy-tokenize the raw splits over all cores."""
import click

from pipeline.tokenize import TOKENIZE_DEFAULTS, tokenize_dataset

from .common import echo_json, params_option, path_or_default, read_blocks, user_errors


@click.command("tokenize")
@params_option
@click.option("--raw", type=click.Path(file_okay=False), help="ingest output [artifacts/<dataset>/raw]")
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/tokens]")
@user_errors
def main(params_path: str, raw: str | None, out: str | None) -> None:
    """Normalise and tokenize every split into <out>/<split>.arrow and stats.json."""
    dataset, block = read_blocks(params_path, "tokenize", TOKENIZE_DEFAULTS)
    stats = tokenize_dataset(path_or_default(raw, dataset, "ingest"), path_or_default(out, dataset, "tokenize"), block)
    echo_json({k: stats[k] for k in ("tokens", "seconds", "tokens_per_second", "workers")})


if __name__ == "__main__":
    main()
