"""Training, evaluation and prediction on the demo corpus."""
import csv
import json

import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.evaluate import EVALUATE_DEFAULTS, classification_metrics, evaluate_stage
from pipeline.predict import Predictor
from pipeline.train import Trainer, load_checkpoint

from .conftest import run_cli
from .test_preprocess import run_all

FAST = {"epochs": 2, "embed_dim": 16, "hidden_size": 16, "patience": 0, "batch_size": 32, "seed": 7}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    run_all(root, tokenize={"workers": 1})
    return root


def fit(root, out, config, resume=None, **kw):
    trainer = Trainer(root / "shards", root / "vocab" / "vocab.tsv", out, config, resume_dir=resume)
    return trainer, trainer.fit(**kw)


def test_short_training_beats_majority_class(demo, tmp_path):
    _, result = fit(demo, tmp_path / "model", {**FAST, "max_steps": 60}, history_path=tmp_path / "h.csv",
                    metrics_path=tmp_path / "m.json")
    assert result["steps"] == 60
    assert result["val_acc"] > 0.5 + 0.1, "must beat the majority class (50%) clearly"
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads((tmp_path / "m.json").read_text())["val_acc"] == result["val_acc"]
    ckpt = load_checkpoint(tmp_path / "model" / "model.pt", demo / "vocab" / "vocab.tsv")
    assert ckpt["labels"] == ["neg", "pos"] and ckpt["config"]["hidden_size"] == 16


def test_resume_equals_uninterrupted(demo, tmp_path):
    _, full = fit(demo, tmp_path / "full", {**FAST, "epochs": 3})
    # Interrupted run: the first session stops after epoch 1 (as if killed), leaving last.pt behind.
    trainer = Trainer(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "part", {**FAST, "epochs": 3},
                      resume_dir=tmp_path / "resume")
    trainer.train_epoch(1)
    from pipeline.train import evaluate_split
    val = evaluate_split(trainer.model, trainer.val_data, 256, trainer.device)
    trainer.history.append({"epoch": 1, "train_loss": 0, "train_acc": 0, "val_loss": val["loss"], "val_acc": val["accuracy"],
                            "padding_waste": 0, "tokens_per_s": 1})
    trainer.best = {"epoch": 1, "val_acc": val["accuracy"], "val_loss": val["loss"]}
    trainer.best_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._save_resume(1)
    assert (tmp_path / "resume" / "last.pt").exists()
    _, resumed = fit(demo, tmp_path / "part", {**FAST, "epochs": 3}, resume=tmp_path / "resume")
    assert resumed["resumed"] is True and resumed["epochs"] == 3
    assert not (tmp_path / "resume" / "last.pt").exists()
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_same_seed_same_model(demo, tmp_path):
    _, r1 = fit(demo, tmp_path / "a", {**FAST, "max_steps": 20})
    _, r2 = fit(demo, tmp_path / "b", {**FAST, "max_steps": 20})
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and r1["val_acc"] == r2["val_acc"]


def test_evaluate_report_and_predict(demo, tmp_path):
    fit(demo, demo / "model", {**FAST, "epochs": 2}, history_path=demo / "h.csv")
    metrics = evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", demo / "model", demo / "raw", demo / "h.csv",
                             tmp_path / "eval", tmp_path / "eval.json", tmp_path / "confusion.csv", EVALUATE_DEFAULTS)
    assert metrics["split"] == "test" and metrics["rows"] == 400
    assert sum(map(sum, metrics["confusion"])) == 400
    assert metrics["accuracy"] == round(np.trace(metrics["confusion"]) / 400, 6)
    assert json.loads((tmp_path / "eval.json").read_text())["macro_f1"] == metrics["macro_f1"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == json.loads((tmp_path / "eval.json").read_text())
    report = (tmp_path / "eval" / "report.md").read_text()
    for needle in ("## Metrics", "## Per class", "![confusion matrix](confusion.png)", "![training curves](curves.png)",
                   "## Misclassified examples", '"hidden_size": 16'):
        assert needle in report
    for png in ("confusion.png", "curves.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(tmp_path / "confusion.csv")))
    assert len(rows) == 400 and set(rows[0]) == {"actual", "predicted"}

    p = Predictor(demo / "model" / "model.pt", demo / "vocab" / "vocab.tsv")
    out = p.predict(["The acting was truly wonderful. A must see.", "The plot was dreadful. Skip it.", "", "zzzz qqqq"])
    assert [r["label"] for r in out] == ["pos", "neg", None, None]
    assert abs(sum(out[0]["probs"].values()) - 1) < 1e-3
    assert out[2]["error"] == "empty text" and "unknown" in out[3]["error"]


def test_checkpoint_from_other_vocab_is_refused(demo, tmp_path):
    fit(demo, tmp_path / "m", {**FAST, "max_steps": 5})
    other = tmp_path / "v.tsv"
    other.write_text("<pad>\t0\n<unk>\t0\nx\t1\n")
    with pytest.raises(PipelineError, match="trained with another vocabulary"):
        load_checkpoint(tmp_path / "m" / "model.pt", other)
    with pytest.raises(PipelineError, match="not found; run `textpipe train`"):
        load_checkpoint(tmp_path / "nope" / "model.pt")


def test_classification_metrics_exact():
    m = classification_metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["accuracy"] == 0.6
    assert m["per_class"]["b"] == {"precision": round(2 / 3, 6), "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["c"]["f1"] == 0.0


def test_predict_cli_reads_stdin_and_reports_missing_model(demo, tmp_path, write_params):
    import subprocess
    import shutil

    fit(demo, tmp_path / "m", {**FAST, "epochs": 2})
    params = write_params()
    exe = shutil.which("textpipe")
    proc = subprocess.run([exe, "predict", "--params", str(params), "--model", str(tmp_path / "m"), "--vocab",
                           str(demo / "vocab" / "vocab.tsv"), "--json"],
                          input="The ending was superb. A must see.\n\nThe cast was awful. Skip it.\n",
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in lines] == ["pos", "neg"]
    proc = run_cli("predict", "--params", params, "--model", tmp_path / "none", "--vocab", demo / "vocab" / "vocab.tsv",
                   "good", check=False)
    assert proc.returncode == 2 and "not found; run `textpipe train`" in proc.stderr


def test_vectors_file_initialises_embeddings(demo, tmp_path):
    from pipeline.train import load_vectors
    from pipeline.vocab import Vocabulary

    vocab = Vocabulary.load(demo / "vocab" / "vocab.tsv")
    vec = tmp_path / "vec.txt"
    vec.write_text("3 4\nthe 1 2 3 4\nwas 0.5 0.5 0.5 0.5\nnotaword 9 9 9 9\n")
    weights, covered = load_vectors(vec, vocab, 4)
    assert covered == 2
    assert weights[vocab.stoi["the"]].tolist() == [1, 2, 3, 4]
    assert weights[0].abs().sum() == 0
    with pytest.raises(PipelineError, match="has 4 values but train.embed_dim is 8"):
        load_vectors(vec, vocab, 8)
    _, result = fit(demo, tmp_path / "m", {**FAST, "embed_dim": 4, "vectors": str(vec), "max_steps": 3, "epochs": 1})
    assert result["vectors_covered"] == 2
