"""`textpipe predict`: classify new text with the dataset's trained model, or with an exported model file."""
import itertools
import json
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

import click

from pipeline.core.config import DatasetConfig
from pipeline.core.errors import PipelineError
from pipeline.core.layout import MODEL_FILE, model_file, vocab_file
from pipeline.core.params import load_params

from .common import params_option


def read_lines(stream, name: str) -> Iterator[str]:
    """The lines of a byte stream decoded as UTF-8 as they are read, without their line ends; an
    invalid byte is one `Error:` line naming its line and byte offset."""
    offset = 0
    for n, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PipelineError(f"{name} is not valid UTF-8 (line {n}, byte offset {offset + exc.start}); "
                                "re-save it as UTF-8") from None
        offset += len(raw)
        yield line.removesuffix("\n").rstrip("\r")


def load_predictor(params_path: str, model: str | None, vocab: str | None, device: str):
    """An exported file (`--model FILE`, no params.yaml needed), a model folder with `--vocab`, or
    the current dataset's model from params.yaml."""
    from pipeline.predict import Predictor  # here: `textpipe predict --help` stays instant

    if model and Path(model).is_file():
        return Predictor.load(model, device)
    if model and vocab:
        return Predictor(Path(model) / MODEL_FILE, vocab, device)
    name = DatasetConfig.from_block(load_params(params_path).get("dataset")).name
    return Predictor(Path(model) / MODEL_FILE if model else model_file(name), vocab or vocab_file(name), device)


@click.command("predict")
@params_option
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("rb"), help="one text per line ('-' for stdin)")
@click.option("--jsonl", "text_field", default=None, metavar="FIELD",
              help="read JSON lines (from --file or stdin) and classify each one's FIELD")
@click.option("--model", "model", type=click.Path(), help="an exported model file, or a model folder (with --vocab) "
              "[the dataset's, from params]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary file of a model folder [the dataset's]")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda", "mps", "auto"]),
              help="where the model runs")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines (text, label, probs; with --jsonl, the "
              "record's other fields as record) instead of a table")
def main(params_path, texts, file_, text_field, model, vocab, device, as_json) -> None:
    """Print the label and class probabilities of each TEXT (or each line of --file / stdin).

    Lines are read, classified and printed a block at a time, so a file of any size works and
    results start at once; an invalid line stops the run after the blocks before it."""
    from pipeline.predict import iter_inputs

    items: Iterator[tuple[str, dict | None]] = ((text, None) for text in texts)
    if file_ is not None:
        items = itertools.chain(items, iter_inputs(read_lines(file_, file_.name), text_field))
    elif not texts and not sys.stdin.isatty():
        items = iter_inputs(read_lines(sys.stdin.buffer, "standard input"), text_field)
    first = next(items, None)
    if first is None:
        raise PipelineError("no text to classify; pass text as arguments, --file FILE, or pipe it on stdin")
    records: deque = deque()  # each text's record fields, until its result comes (a block at most)

    def texts_of(inputs):
        for text, fields in inputs:
            records.append(fields)
            yield text

    failed = 0
    predictor = load_predictor(params_path, model, vocab, device)
    for r in predictor.predict_stream(texts_of(itertools.chain([first], items))):
        fields = records.popleft()
        if as_json:
            click.echo(json.dumps(r if fields is None else {**r, "record": fields}, ensure_ascii=False))
        elif r["label"] is None:
            failed += 1
            click.echo(f"-\t{r['error']}\t{r['text'][:60]}")
        else:
            probs = " ".join(f"{k}={v:.3f}" for k, v in r["probs"].items())
            click.echo(f"{r['label']}\t{probs}\t{r['text'][:60]}")
    if failed:
        click.echo(f"warning: {failed} text(s) could not be classified (empty or all words unknown)", err=True)
