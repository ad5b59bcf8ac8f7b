"""`textpipe predict`: classify new text with the dataset's trained model."""
import json
import sys

import click

from pipeline.errors import PipelineError
from pipeline.predict import Predictor

from .common import params_option, path_or_default, read_blocks, user_errors


@click.command("predict")
@params_option
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), help="one text per line ('-' for stdin)")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="[artifacts/<dataset>/model]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="[artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
@user_errors
def main(params_path, texts, file_, model_dir, vocab, as_json) -> None:
    """Print the label and class probabilities of each TEXT (or each line of --file / stdin)."""
    dataset, _ = read_blocks(params_path, "predict", {})
    items = list(texts)
    if file_ is not None:
        items += [line.rstrip("\n") for line in file_ if line.strip()]
    elif not items and not sys.stdin.isatty():
        items += [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not items:
        raise PipelineError("no text to classify; pass text as arguments, --file FILE, or pipe it on stdin")
    model = path_or_default(model_dir, dataset, "train") / "model.pt"
    predictor = Predictor(model, path_or_default(vocab, dataset, "vocab", "vocab.tsv"))
    failed = 0
    for r in predictor.predict(items):
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False))
        elif r["label"] is None:
            failed += 1
            click.echo(f"-\t{r['error']}\t{r['text'][:60]}")
        else:
            probs = " ".join(f"{k}={v:.3f}" for k, v in r["probs"].items())
            click.echo(f"{r['label']}\t{probs}\t{r['text'][:60]}")
    if failed:
        click.echo(f"warning: {failed} text(s) could not be classified (empty or all words unknown)", err=True)


if __name__ == "__main__":
    main()
