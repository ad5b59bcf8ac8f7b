"""`textpipe export`: one self-contained model file to ship (weights, vocabulary, tokenizer settings, labels)."""
import click

from pipeline.core.config import DatasetConfig
from pipeline.core.layout import model_file, stage_dir, vocab_file
from pipeline.core.params import load_params

from .common import echo_json, params_option


@click.command("export")
@params_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="the file to write, e.g. model.textpipe")
def main(params_path: str, out: str) -> None:
    """Write the current dataset's trained model as one file that `textpipe predict --model FILE` and
    `Predictor.load(FILE)` use from any folder (read with torch.load(weights_only=True))."""
    name = DatasetConfig.from_block(load_params(params_path).get("dataset")).name
    from pipeline.predict import export_model  # after the params check: `textpipe export --help` stays instant

    echo_json(export_model(model_file(name), vocab_file(name), stage_dir(name, "ingest"), out))
