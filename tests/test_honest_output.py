"""What textpipe prints and reports says what happened: partial epochs, batch counts, early stops, the
split that chose the model, the vectors settings, and no empty folder after a failed run."""
import json

from pipeline.core.config import EvaluateConfig
from pipeline.core.fileio import write_json
from pipeline.evaluate import evaluate_stage
from pipeline.train import vectors_settings

from .helpers import FAST_TRAIN, run_cli
from .test_train import fit, trained  # noqa: F401  (a module fixture)


def stderr_lines(capsys, needle):
    return [line for line in capsys.readouterr().err.splitlines() if needle in line]


def test_early_stop_is_said_only_when_training_stopped_before_its_last_epoch(demo, tmp_path, capsys):
    still = {**FAST_TRAIN, "lr": 1e-12, "patience": 1, "lr_decay": 1.0}  # no validation gain after epoch 1
    fit(demo, tmp_path / "two", {**still, "epochs": 2})
    assert stderr_lines(capsys, "early stop") == []  # epoch 2 of 2 simply ended
    trainer, _ = fit(demo, tmp_path / "three", {**still, "epochs": 3})
    assert stderr_lines(capsys, "early stop") == ["early stop after epoch 2 of 3: no validation gain for 1 epoch(s)"]
    assert len(trainer.history) == 2


def test_a_partial_epoch_is_said_recorded_and_marked_on_the_curves(demo, tmp_path, capsys):
    trainer, _ = fit(demo, tmp_path / "model", {**FAST_TRAIN, "epochs": 1, "max_steps": 5})
    batches = len(trainer.sampler.batches())
    assert stderr_lines(capsys, "partial") == [f"epoch 1 is partial: train.max_steps (5) stopped it after 5 of "
                                               f"{batches} batches"]
    stats = json.loads((tmp_path / "model" / "stats.json").read_text())
    assert stats["partial_epoch"] == f"epoch 1: 5 of {batches} batches (train.max_steps)"
    full, _ = fit(demo, tmp_path / "full", {**FAST_TRAIN, "epochs": 1})
    assert json.loads((tmp_path / "full" / "stats.json").read_text())["partial_epoch"] is None
    from pipeline.report import plot_curves

    history = [{"epoch": "1", "train_loss": "0.6", "val_loss": "0.5", "train_acc": "0.6", "val_acc": "0.7"}]
    captured = {}
    import matplotlib.axes

    real = matplotlib.axes.Axes.set_xlabel

    def spy(self, label, *a, **k):
        captured.setdefault("labels", []).append(label)
        captured.setdefault("ticks", []).append([t.get_text() for t in self.get_xticklabels()])
        return real(self, label, *a, **k)

    matplotlib.axes.Axes.set_xlabel = spy
    try:
        plot_curves(history, tmp_path / "c.png", stats["partial_epoch"])
    finally:
        matplotlib.axes.Axes.set_xlabel = real
    assert captured["ticks"] == [["1*"], ["1*"]]  # one tick per epoch, no fractional ones
    assert captured["labels"] == [f"epoch (* partial: {stats['partial_epoch']})"] * 2


def test_a_report_scored_on_the_split_that_chose_the_model_says_so(demo, trained, tmp_path):
    evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", trained, demo / "raw", tmp_path / "val",
                   EvaluateConfig(split="validation", baseline=False), tmp_path / "c1.csv")
    head = (tmp_path / "val" / "report.md").read_text().split("## Metrics")[0]
    assert "**Note:** this is the validation split, which also chose the model" in head
    assert "`dataset.test_fraction`" in head
    evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", trained, demo / "raw", tmp_path / "test",
                   EvaluateConfig(split="test", baseline=False), tmp_path / "c2.csv")
    assert "**Note:**" not in (tmp_path / "test" / "report.md").read_text()


def test_the_report_params_show_the_vectors_settings(tmp_path):
    folder = tmp_path / "vectors"
    folder.mkdir()
    (folder / "vectors.txt").write_text("x")
    write_json(folder / "params.json", {"vectors": {"method": "word2vec", "epochs": 10, "dim": 128}})
    assert vectors_settings(folder / "vectors.txt", folder) == {"method": "word2vec", "epochs": 10, "dim": 128}
    assert vectors_settings(tmp_path / "mine.txt", folder) is None  # a file of the user's own: train.vectors says it
    assert vectors_settings(None, folder) is None


def test_a_failed_run_leaves_no_empty_dataset_folder(tmp_path, write_params):
    params = write_params(dataset={"name": "mine", "source": "files", "path": str(tmp_path / "nowhere")})
    proc = run_cli("ingest", "--params", params, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: dataset.path")
    assert not (tmp_path / "artifacts" / "mine").exists()
