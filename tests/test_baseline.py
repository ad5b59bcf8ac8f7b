"""The linear bag-of-n-grams baseline (pipeline/baseline.py) and its place in evaluate's report and metrics."""
import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.baseline import BUCKETS, bigram_slots, features, fit_baseline, predicted_batches
from pipeline.checkpoint import read_checkpoint_file
from pipeline.core.config import EvaluateConfig
from pipeline.evaluate import evaluate_stage
from pipeline.shards import ShardReader

from .helpers import FAST_TRAIN, run_cli, train_project


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 999), max_size=12), min_size=1, max_size=6))
def test_each_row_is_its_unigrams_then_its_hashed_bigrams(rows):
    width = max(1, max(map(len, rows)))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    flat, offsets = features(ids, np.array([len(r) for r in rows]), 1000)
    ends = [*offsets.tolist()[1:], len(flat)]
    for r, start, end in zip(rows, offsets.tolist(), ends):
        bag = flat[start:end].tolist()
        assert bag[:len(r)] == r  # unigrams: the vocabulary ids, in order
        pairs = bag[len(r):]
        assert len(pairs) == max(len(r) - 1, 0)
        assert all(1000 <= s < 1000 + BUCKETS for s in pairs)
        assert pairs == bigram_slots(np.array(r[:-1]), np.array(r[1:]), 1000).tolist()
    assert bigram_slots(np.array([3]), np.array([4]), 1000)[0] != bigram_slots(np.array([4]), np.array([3]), 1000)[0]


def test_baseline_learns_the_demo_and_is_repeatable(demo):
    reader = ShardReader(demo / "shards")
    size = reader.manifest["vocab"]["size"]
    torch.set_num_threads(1)
    model, info = fit_baseline(reader.split("train"), size, 2, seed=3)
    again, _ = fit_baseline(reader.split("train"), size, 2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    right = rows = 0
    for actual, predicted in predicted_batches(model, reader, "test", 64):
        right += int((actual == predicted).sum())
        rows += len(actual)
    assert rows == 600 and right / rows > 0.8  # the demo is two balanced classes: chance is 0.5
    assert info["epochs"] == 5 and info["train_rows"] == len(reader.split("train"))


def test_report_and_metrics_put_the_baseline_beside_the_model(demo, tmp_path):
    from tests.test_train import fit

    _, run = fit(demo, tmp_path / "model", FAST_TRAIN)
    metrics = evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "model", demo / "raw",
                             tmp_path / "eval", EvaluateConfig(), tmp_path / "confusion.csv")
    base, margin = metrics["baseline"], metrics["margin"]
    assert base["accuracy"] == round(np.trace(base["confusion"]) / 600, 6) and sum(map(sum, base["confusion"])) == 600
    assert margin == {k: round(metrics[k] - base[k], 6) for k in ("accuracy", "macro_f1")}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics
    report = (tmp_path / "eval" / "report.md").read_text()
    section = report.split("## Against a baseline")[1].split("\n## ")[0]
    assert f"| {base['accuracy']:.4f} | {base['macro_f1']:.4f} | {base['seconds']:.1f} s |" in section
    assert f"| margin (LSTM − baseline) | {100 * margin['accuracy']:+.1f} points |" in section
    verdict = ("points** of accuracy above" if margin["accuracy"] >= 0.005 else
               "as good as the LSTM" if margin["accuracy"] > -0.005 else "better than the LSTM")
    assert verdict in section
    saved = read_checkpoint_file(tmp_path / "eval" / "baseline.pt", "textpipe-baseline/1")
    assert saved["labels"] == ["neg", "pos"] and saved["buckets"] == BUCKETS

    off = evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "model", demo / "raw",
                         tmp_path / "eval-off", EvaluateConfig(baseline=False), tmp_path / "confusion-off.csv")
    assert "baseline" not in off and "margin" not in off and off["accuracy"] == metrics["accuracy"]
    assert "## Against a baseline" not in (tmp_path / "eval-off" / "report.md").read_text()
    assert not (tmp_path / "eval-off" / "baseline.pt").exists()


def test_the_report_says_plainly_when_the_baseline_is_as_good_or_better():
    from pipeline.report import baseline_section

    def verdict(lstm, base):
        m = {"accuracy": lstm, "macro_f1": lstm, "baseline": {"accuracy": base, "macro_f1": base, "seconds": 0.7},
             "margin": {"accuracy": round(lstm - base, 6), "macro_f1": round(lstm - base, 6)}}
        return " ".join(baseline_section(m))

    assert "**3.0 points** of accuracy above the baseline" in verdict(0.91, 0.88)
    assert "as good as the LSTM here" in verdict(0.881, 0.884) and "0.7 s" in verdict(0.881, 0.884)
    assert "better than the LSTM here**, by 2.0 points" in verdict(0.86, 0.88)
    assert baseline_section({"accuracy": 0.9, "macro_f1": 0.9}) == []


def test_evaluate_stage_writes_the_baseline_to_the_dvc_metrics(demo, tmp_path):
    project = train_project(tmp_path, demo, FAST_TRAIN)
    import shutil

    shutil.copytree(demo / "raw", project / "artifacts" / "demo" / "raw")
    run_cli("train", cwd=project)
    run_cli("evaluate", cwd=project)
    figures = json.loads((project / "artifacts" / "metrics" / "eval.json").read_text())
    assert sorted(figures) == ["accuracy", "baseline_accuracy", "baseline_macro_f1", "loss", "macro_f1", "margin"]
    assert figures["margin"] == round(figures["accuracy"] - figures["baseline_accuracy"], 6)
