"""`textpipe predict`: classify new text with the dataset's trained model."""
import json
import sys
from pathlib import Path

import click

from pipeline.config import DatasetConfig
from pipeline.errors import PipelineError
from pipeline.layout import MODEL_FILE, model_file, vocab_file
from pipeline.params import load_params

from .common import params_option


def read_lines(stream, name: str) -> list[str]:
    """The non-blank lines of a byte stream decoded as UTF-8; invalid bytes are one `Error:` line."""
    data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PipelineError(f"{name} is not valid UTF-8 (line {line}, byte offset {exc.start}); re-save it as UTF-8") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


@click.command("predict")
@params_option
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("rb"), help="one text per line ('-' for stdin)")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="model folder [the dataset's, from params]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary file [the dataset's, from params]")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
def main(params_path, texts, file_, model_dir, vocab, as_json) -> None:
    """Print the label and class probabilities of each TEXT (or each line of --file / stdin)."""
    from pipeline.predict import Predictor

    items = list(texts)
    if file_ is not None:
        items += read_lines(file_, file_.name)
    elif not items and not sys.stdin.isatty():
        items += read_lines(sys.stdin.buffer, "standard input")
    if not items:
        raise PipelineError("no text to classify; pass text as arguments, --file FILE, or pipe it on stdin")
    if model_dir and vocab:
        model, vocab_path = Path(model_dir) / MODEL_FILE, Path(vocab)
    else:
        name = DatasetConfig.from_block(load_params(params_path).get("dataset")).name
        model = Path(model_dir) / MODEL_FILE if model_dir else model_file(name)
        vocab_path = Path(vocab) if vocab else vocab_file(name)
    predictor = Predictor(model, vocab_path)
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

