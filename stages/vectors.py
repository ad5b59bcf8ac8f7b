"""`textpipe vectors`: word2vec on the train split's text plus unlabelled corpora (or nothing, with method none)."""
import click

from pipeline.vectors import VECTORS_DEFAULTS, vectors_stage

from .common import echo_json, params_option, path_or_default, read_blocks, user_errors


@click.command("vectors")
@params_option
@click.option("--tokens", type=click.Path(file_okay=False), help="tokenize output [artifacts/<dataset>/tokens]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary [artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--out", type=click.Path(file_okay=False), help="output folder [artifacts/<dataset>/vectors]")
@user_errors
def main(params_path: str, tokens: str | None, vocab: str | None, out: str | None) -> None:
    """Write <out>/vectors.txt (word2vec text format, vocabulary words only) and manifest.json."""
    dataset, block = read_blocks(params_path, "vectors", VECTORS_DEFAULTS)
    stats = vectors_stage(path_or_default(tokens, dataset, "tokenize"), path_or_default(vocab, dataset, "vocab", "vocab.tsv"),
                          path_or_default(out, dataset, "vectors"), block)
    echo_json({k: stats[k] for k in ("method", "tokens", "vocab_coverage", "train_token_coverage") if k in stats})


if __name__ == "__main__":
    main()
