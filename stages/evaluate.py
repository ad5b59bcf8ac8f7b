"""`textpipe evaluate`: metrics, plots and report.md for the trained model."""
import click

from pipeline.evaluate import EVALUATE_DEFAULTS, evaluate_stage

from .common import echo_json, metrics_default, params_option, plots_default, path_or_default, read_blocks, user_errors


@click.command("evaluate")
@params_option
@click.option("--shards", type=click.Path(file_okay=False), help="[artifacts/<dataset>/shards]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="[artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="[artifacts/<dataset>/model]")
@click.option("--raw", type=click.Path(file_okay=False), help="raw text, for examples [artifacts/<dataset>/raw]")
@click.option("--history", type=click.Path(dir_okay=False), help="training curves CSV [artifacts/plots/train.csv]")
@click.option("--out", type=click.Path(file_okay=False), help="report folder [artifacts/<dataset>/eval]")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="[artifacts/metrics/eval.json]")
@click.option("--confusion", type=click.Path(dir_okay=False), help="[artifacts/plots/confusion.csv]")
@user_errors
def main(params_path, shards, vocab, model_dir, raw, history, out, metrics_path, confusion) -> None:
    """Evaluate on the test split (validation if there is none) and write report.md with plots."""
    dataset, block = read_blocks(params_path, "evaluate", EVALUATE_DEFAULTS)
    metrics = evaluate_stage(
        path_or_default(shards, dataset, "shard"), path_or_default(vocab, dataset, "vocab", "vocab.tsv"),
        path_or_default(model_dir, dataset, "train"), path_or_default(raw, dataset, "ingest"),
        history or plots_default("train"), path_or_default(out, dataset, "evaluate"),
        metrics_path or metrics_default("eval"), confusion or plots_default("confusion"), block)
    echo_json({k: metrics[k] for k in ("split", "rows", "accuracy", "macro_f1", "loss")})


if __name__ == "__main__":
    main()
