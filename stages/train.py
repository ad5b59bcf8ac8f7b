"""`textpipe train`: train the classifier on the shards."""
import click

from pipeline.core.errors import PipelineError
from pipeline.core.fileio import write_csv
from pipeline.core.layout import plots_file, resume_dir, stage_dir, vocab_file

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("train")
@params_option
def main(params_path: str) -> None:
    """Train; keep the best epoch in artifacts/<dataset>/model/. An interrupted run resumes from its last epoch."""
    dataset, cfg = stage_configs(params_path, "train")
    from pipeline import distributed  # after the params check, not at the top: `textpipe train --help` stays instant
    from pipeline.train import PLOT_FIELDS, Trainer
    if cfg["train"].nproc > 1 and not distributed.launched():
        code = distributed.launch(cfg["train"].nproc, ["train", "--params", params_path])
        if code:
            raise PipelineError(f"training under torchrun with {cfg['train'].nproc} processes failed (exit {code}); "
                                "see the lines above")
        return
    name = dataset.name
    trainer = Trainer(stage_dir(name, "shard"), vocab_file(name), stage_dir(name, "train"), cfg["train"],
                      resume_dir(name), stage_dir(name, "vectors"))
    try:
        run = trainer.fit()
    finally:
        trainer.close()
    if trainer.world.main:
        write_metrics("train", {k: run[k] for k in ("val_acc", "val_loss", "best_epoch", "tokens_per_s", "seconds")})
        write_csv(plots_file("train"), list(PLOT_FIELDS), trainer.plot_rows())
        echo_json(run)
