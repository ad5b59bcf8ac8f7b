"""`textpipe evaluate`: metrics, plots and report.md for the trained model."""
import click

from pipeline.core.layout import plots_file, stage_dir, vocab_file

from .common import echo_json, params_option, stage_configs, write_metrics


@click.command("evaluate")
@params_option
def main(params_path: str) -> None:
    """Evaluate on the test split (validation if there is none); write artifacts/<dataset>/eval/report.md."""
    dataset, cfg = stage_configs(params_path, "evaluate")
    from pipeline.evaluate import evaluate_stage  # after the params check, not at the top: `textpipe evaluate --help` stays instant
    name = dataset.name
    metrics = evaluate_stage(stage_dir(name, "shard"), vocab_file(name), stage_dir(name, "train"),
                             stage_dir(name, "ingest"), stage_dir(name, "evaluate"), cfg["evaluate"], plots_file("confusion"))
    figures = {k: metrics[k] for k in ("accuracy", "macro_f1", "loss")}
    if "baseline" in metrics:
        figures.update(baseline_accuracy=metrics["baseline"]["accuracy"], baseline_macro_f1=metrics["baseline"]["macro_f1"],
                       margin=metrics["margin"]["accuracy"])
    write_metrics("eval", figures)
    echo_json({"split": metrics["split"], "rows": metrics["rows"], **figures})
