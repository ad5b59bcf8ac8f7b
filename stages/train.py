"""`textpipe train`: train the classifier on the shards."""
import click

from pipeline.layout import ROOT
from pipeline.train import TRAIN_DEFAULTS, Trainer

from .common import echo_json, metrics_default, params_option, plots_default, path_or_default, read_blocks, user_errors


@click.command("train")
@params_option
@click.option("--shards", type=click.Path(file_okay=False), help="shard output [artifacts/<dataset>/shards]")
@click.option("--vocab", type=click.Path(dir_okay=False), help="vocabulary [artifacts/<dataset>/vocab/vocab.tsv]")
@click.option("--out", type=click.Path(file_okay=False), help="model folder [artifacts/<dataset>/model]")
@click.option("--history", type=click.Path(dir_okay=False), help="per-epoch CSV for `dvc plots` [artifacts/plots/train.csv]")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="DVC metrics [artifacts/metrics/train.json]")
@click.option("--resume-dir", type=click.Path(file_okay=False), help="resume checkpoint folder [artifacts/<dataset>/resume]")
@click.option("--vectors", "vectors_dir", type=click.Path(file_okay=False),
              help="vectors stage output; used when it trained vectors [artifacts/<dataset>/vectors]")
@user_errors
def main(params_path, shards, vocab, out, history, metrics_path, resume_dir, vectors_dir) -> None:
    """Train; keep the best epoch in <out>/model.pt. An interrupted run resumes from its last epoch."""
    dataset, block = read_blocks(params_path, "train", TRAIN_DEFAULTS)
    trainer = Trainer(path_or_default(shards, dataset, "shard"), path_or_default(vocab, dataset, "vocab", "vocab.tsv"),
                      path_or_default(out, dataset, "train"), block, resume_dir or ROOT / dataset["name"] / "resume",
                      path_or_default(vectors_dir, dataset, "vectors"))
    result = trainer.fit(history or plots_default("train"), metrics_path or metrics_default("train"))
    echo_json(result)


if __name__ == "__main__":
    main()
