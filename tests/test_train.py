"""Training, evaluation and prediction on the demo corpus."""
import collections
import csv
import json
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.core.config import BucketConfig, EvaluateConfig, TrainConfig
from pipeline.core.errors import PipelineError
from pipeline.evaluate import ExampleDraw, classification_metrics, confusion_counts, evaluate_stage
from pipeline.core.fileio import write_csv
from pipeline.predict import Predictor
from pipeline.core.schema import UNK_ID
from pipeline.shards import ShardReader
from pipeline.train import Trainer
from pipeline.vocab import Vocabulary

from .helpers import FAST_TRAIN, needs_native_bf16, run_cli, train_project


def fit(root, out, config, resume=None):
    trainer = Trainer(root / "shards", root / "vocab" / "vocab.tsv", out, TrainConfig.from_block(config), resume_dir=resume)
    return trainer, trainer.fit()


def test_lazy_adam_trains_the_demo_as_well_as_dense_adam(demo, tmp_path):
    """Sparse embedding gradients + SparseAdam (the default on one process) against the dense fused Adam:
    not the same maths, so the check is the outcome (same epochs, same data order)."""
    accuracy = {}
    for grad in ("dense", "sparse"):
        trainer, result = fit(demo, tmp_path / grad, {**FAST_TRAIN, "embedding_grad": grad})
        assert trainer.model.embedding.sparse == (grad == "sparse") and sorted(trainer.optimizer.parts)[-1] == grad
        accuracy[grad] = result["val_acc"]
    assert min(accuracy.values()) > 0.8 and abs(accuracy["sparse"] - accuracy["dense"]) <= 0.05, accuracy


@needs_native_bf16()
def test_bf16_steps_train_the_demo_as_well_as_fp32(demo, tmp_path):
    """bf16 forward passes against fp32 (the default lazy Adam both times): not the same maths, so the check is
    the outcome; the checkpoint holds fp32 weights either way."""
    accuracy, models = {}, {}
    for precision in ("fp32", "bf16"):
        _, result = fit(demo, tmp_path / precision, {**FAST_TRAIN, "precision": precision})
        accuracy[precision] = result["val_acc"]
        models[precision] = load_checkpoint(tmp_path / precision / "model.pt", demo / "vocab" / "vocab.tsv")
    assert min(accuracy.values()) > 0.8 and abs(accuracy["bf16"] - accuracy["fp32"]) <= 0.05, accuracy
    weights = {p: m["state_dict"]["embedding.weight"] for p, m in models.items()}
    assert weights["bf16"].dtype == torch.float32 and not torch.equal(weights["bf16"], weights["fp32"])
    assert models["bf16"]["config"]["precision"] == "bf16"


def test_short_training_beats_majority_class(demo, tmp_path):
    trainer, result = fit(demo, tmp_path / "model", {**FAST_TRAIN, "max_steps": 90})
    assert trainer.step == 90
    assert result["val_acc"] > 0.5 + 0.1, "must beat the majority class (50%) clearly"
    rows = list(csv.DictReader(open(tmp_path / "model" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "tokens_per_s" not in rows[0]
    assert max(float(r["val_acc"]) for r in rows) == round(result["val_acc"], 6)  # history.csv holds 6 decimals
    assert json.loads((tmp_path / "model" / "stats.json").read_text())["steps"] == 90
    ckpt = load_checkpoint(tmp_path / "model" / "model.pt", demo / "vocab" / "vocab.tsv")
    assert ckpt["labels"] == ["neg", "pos"] and ckpt["config"]["hidden_size"] == 32
    assert ckpt["preprocess"]["bucket"]["max_len"] == BucketConfig().max_len and isinstance(ckpt["preprocess"], dict)
    assert [r[:6] for r in trainer.plot_rows()] == [[int(r["epoch"])] + [float(r[k]) for k in
                                                    ("train_loss", "train_acc", "val_loss", "val_acc", "padding_waste")]
                                                   for r in rows]


def test_texts_too_long_to_share_a_batch_are_named_once(demo, tmp_path, capsys):
    lengths = ShardReader(demo / "shards").split("train").lengths
    budget = int(np.sort(lengths)[-5]) * 2 - 1  # the five longest texts cannot share a batch
    trainer, _ = fit(demo, tmp_path / "model", {**FAST_TRAIN, "max_tokens": budget, "max_steps": 2, "epochs": 1})
    assert trainer.sampler.lone_rows() == int(np.count_nonzero(lengths * 2 > budget)) >= 5
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {trainer.sampler.lone_rows():,} of {len(lengths):,} training texts are longer than "
                        f"half of train.max_tokens ({budget // 2:,} tokens), so each trains as a batch of its own; "
                        f"raise train.max_tokens to at least {2 * int(lengths.max()):,}, or cut texts with bucket.max_len"]
    fit(demo, tmp_path / "default", {**FAST_TRAIN, "max_steps": 2, "epochs": 1})
    assert "warning:" not in capsys.readouterr().err


def test_a_small_train_split_gets_smaller_batches_and_says_so(demo, tmp_path, capsys):
    """The demo's 2,160 training rows under the default train.min_batches (100): batches of at most 22
    rows (2,160 / 100 rounded up), so each length bucket makes ceil(its rows / 22) batches; one line
    says so, and stats.json records the cap. min_batches: 0 keeps batch_size and prints nothing."""
    data = ShardReader(demo / "shards").split("train")
    per_bucket = np.unique(data.buckets, return_counts=True)[1]
    train = {**FAST_TRAIN, "batch_size": 128, "min_batches": 100, "epochs": 1, "max_steps": 2}
    trainer, _ = fit(demo, tmp_path / "small", train)
    batches = trainer.sampler.batches()
    assert len(data) == 2160 and trainer.batch_rows == 22 and max(len(b) for b in batches) == 22
    assert len(batches) == sum(-(-int(n) // 22) for n in per_bucket) >= 100
    assert json.loads((tmp_path / "small" / "stats.json").read_text())["batch_rows"] == 22
    lines = [line for line in capsys.readouterr().err.splitlines() if "training rows" in line]
    assert lines == [f"2,160 training rows: batches of at most 22 rows instead of train.batch_size 128, {len(batches)} "
                     "batches an epoch (train.min_batches 100; 0 keeps batch_size)"]
    trainer, _ = fit(demo, tmp_path / "off", {**train, "min_batches": 0})
    batches = trainer.sampler.batches()
    assert trainer.batch_rows == 128 and max(len(b) for b in batches) == 128
    assert len(batches) == sum(-(-int(n) // 128) for n in per_bucket)
    assert "training rows" not in capsys.readouterr().err


def test_learning_rate_decays_after_an_epoch_without_validation_gain(demo, tmp_path):
    # a learning rate so small that no prediction changes: validation accuracy never improves after epoch 1
    trainer, _ = fit(demo, tmp_path / "decay", {**FAST_TRAIN, "epochs": 3, "lr": 1e-9})  # the default: 0.5
    assert len({h["val_acc"] for h in trainer.history}) == 1 and len(trainer.history) == 3
    # halved after epoch 2; not after the last epoch; both optimizer parts, in the state a resume point saves
    state = trainer.optimizer.state_dict()
    assert sorted(state) == ["dense", "sparse"]
    assert [g["lr"] for part in state.values() for g in part["param_groups"]] == [0.5e-9, 0.5e-9]
    assert TrainConfig().lr_decay == 0.5
    constant, _ = fit(demo, tmp_path / "constant", {**FAST_TRAIN, "epochs": 3, "lr": 1e-9, "lr_decay": 1.0})
    assert constant.optimizer.lr == 1e-9


def test_schedule_factor_values():
    from pipeline.optim import schedule_factor

    assert [schedule_factor("linear", 0.0, p) for p in (0, 0.25, 0.5, 1.0, 1.5)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert [round(schedule_factor("cosine", 0.0, p), 12) for p in (0, 0.5, 1.0)] == [1.0, 0.5, 0.0]
    # warm-up: 0 -> 1 over the first 20%, then the decay spans the remaining 80%
    assert [schedule_factor("linear", 0.2, p) for p in (0.0, 0.1, 0.2, 0.6, 1.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert [schedule_factor("constant", 0.2, p) for p in (0.1, 0.2, 0.9)] == [0.5, 1.0, 1.0]
    with pytest.raises(ValueError):
        schedule_factor("step", 0.0, 0.5)


def test_learning_rate_follows_the_schedule_step_by_step(demo, tmp_path):
    from pipeline.optim import schedule_factor

    seen = []
    # a learning rate so small that validation never gains after epoch 1: lr_decay halves the base after epoch 2
    cfg = {**FAST_TRAIN, "epochs": 3, "lr": 1e-9, "lr_schedule": "linear", "lr_warmup": 0.25, "lr_decay": 0.5}
    trainer = Trainer(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "m", TrainConfig.from_block(cfg))
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (seen.append([g["lr"] for o in trainer.optimizer.parts.values()
                                                   for g in o.param_groups]), step())[1]
    trainer.fit()
    n = len(seen) // 3  # batches per epoch (the same count every epoch: same rows, same budget)
    assert len(seen) == 3 * n and n > 10 and len({h["val_acc"] for h in trainer.history}) == 1
    # every part (dense and lazy Adam) gets base lr x factor(progress), progress counted in batches over
    # the 3 planned epochs
    want = [[base * schedule_factor("linear", 0.25, (e + i / n) / 3)] * 2
            for e, base in ((0, 1e-9), (1, 1e-9), (2, 0.5e-9)) for i in range(n)]
    assert seen == want
    assert seen[0] == [0.0, 0.0] and seen[n - 1][0] > seen[n][0] > seen[2 * n][0] * 1.5


@pytest.mark.parametrize("resume_every,resumes_at", [(0, "epoch 2 step 0"), (5, "epoch 1 step 5")])
def test_killed_training_resumes_to_the_same_model(demo, tmp_path, resume_every, resumes_at):
    """SIGKILL once the first resume point is on disk (the end of epoch 1, or step 5 of epoch 1's
    ~57 batches); the rerun resumes there and ends with exactly the weights of a run never stopped."""
    import signal
    import subprocess
    import time

    # the mid-epoch case under a warm-up and a cosine decay: the learning rate resumes on its curve too
    schedule = {"lr_schedule": "cosine", "lr_warmup": 0.1} if resume_every else {}
    train = {**FAST_TRAIN, "epochs": 2, "hidden_size": 32, "batch_size": 16, "resume_every": resume_every, **schedule}
    full = train_project(tmp_path / "full", demo, train)
    run_cli("train", cwd=full)
    part = train_project(tmp_path / "part", demo, train)
    resume = part / "artifacts" / "demo" / "resume" / "last.pt"
    model = part / "artifacts" / "demo" / "model" / "model.pt"
    proc = subprocess.Popen(["textpipe", "train"], cwd=part, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert resume.exists() and not model.exists()
    state = torch.load(resume, weights_only=True)
    assert (state["epoch"], state["batches_done"]) == ((1, 0) if resume_every == 0 else (0, 5))
    again = run_cli("train", cwd=part)
    assert f"resuming from {resumes_at}" in again.stderr
    assert json.loads(again.stdout)["resumed"] is True and not resume.exists()
    a = torch.load(full / "artifacts/demo/model/model.pt", weights_only=True)
    b = torch.load(model, weights_only=True)
    assert a["epoch"] == b["epoch"] and a["val_acc"] == b["val_acc"]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0)
    assert (full / "artifacts/demo/model/history.csv").read_bytes() == (part / "artifacts/demo/model/history.csv").read_bytes()


def test_unreadable_resume_point_is_set_aside_and_training_starts_afresh(demo, tmp_path):
    train = {**FAST_TRAIN, "max_steps": 6}
    clean = train_project(tmp_path / "clean", demo, train)
    run_cli("train", cwd=clean)
    part = train_project(tmp_path / "part", demo, train)
    resume = part / "artifacts" / "demo" / "resume" / "last.pt"
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"PK\x03\x04 truncated")
    out = run_cli("train", cwd=part)
    lines = [line for line in out.stderr.splitlines() if "warning" in line]
    assert lines == ["warning: resume point artifacts/demo/resume/last.pt is unreadable (RuntimeError); "
                     "moved to last.pt.corrupt, training starts afresh"], out.stderr
    assert (resume.parent / "last.pt.corrupt").read_bytes() == b"PK\x03\x04 truncated"
    assert json.loads(out.stdout)["resumed"] is False
    assert (clean / "artifacts/demo/model/model.pt").read_bytes() == (part / "artifacts/demo/model/model.pt").read_bytes()


def test_same_seed_same_bytes(demo, tmp_path):
    _, r1 = fit(demo, tmp_path / "a", {**FAST_TRAIN, "max_steps": 20})
    _, r2 = fit(demo, tmp_path / "b", {**FAST_TRAIN, "max_steps": 20})
    for name in ("model.pt", "history.csv", "stats.json", "params.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert r1["val_acc"] == r2["val_acc"]


@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    """A small model trained on the demo shards (module-wide, read-only)."""
    out = tmp_path_factory.mktemp("trained") / "model"
    fit(demo, out, {**FAST_TRAIN, "epochs": 2})
    return out


def test_evaluate_report_and_predict(demo, trained, tmp_path):
    metrics = evaluate_stage(demo / "shards", demo / "vocab" / "vocab.tsv", trained, demo / "raw",
                             tmp_path / "eval", EvaluateConfig(), tmp_path / "plots" / "confusion.csv")
    assert metrics["split"] == "test" and metrics["rows"] == 600
    assert sum(map(sum, metrics["confusion"])) == 600
    assert metrics["accuracy"] == round(np.trace(metrics["confusion"]) / 600, 6)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics
    with open(tmp_path / "plots" / "confusion.csv", newline="") as f:
        pairs = [tuple(r) for r in csv.reader(f)]
    assert pairs[0] == ("actual", "predicted")
    # every row once, in the order it was scored (length order), each pair counted in the matrix
    reader = ShardReader(demo / "shards")
    scored = [y for b in reader.length_ordered("test", EvaluateConfig().batch_size, TrainConfig.max_tokens) for y in b.labels]
    assert [a for a, _ in pairs[1:]] == [("neg", "pos")[y] for y in scored]
    counts = collections.Counter(pairs[1:])
    assert [[counts[(a, p)] for p in ("neg", "pos")] for a in ("neg", "pos")] == metrics["confusion"]
    # the examples: 8 misclassified rows (of more), each a raw test row's text and label, in raw row order
    raw = pq.read_table(demo / "raw" / "test.parquet").to_pydict()
    where = {" ".join(t.split()): (i, ("neg", "pos")[y]) for i, (t, y) in enumerate(zip(raw["text"], raw["label"]))}
    report = (tmp_path / "eval" / "report.md").read_text()
    section = report.split("## Misclassified examples")[1].split("\n## ")[0]
    examples = [line.split(" | ") for line in section.strip().splitlines()[2:]]
    assert 600 - np.trace(metrics["confusion"]) > 8 and len(examples) == 8
    rows = []
    for actual, predicted, prob, text in examples:
        row, label = where[text.rstrip(" |")]
        assert actual == "| " + label and predicted != label and 0.5 <= float(prob) <= 1
        rows.append(row)
    assert rows == sorted(rows)
    for needle in ("## Metrics", "## Per class", "![confusion matrix](confusion.png)", "![training curves](curves.png)",
                   "## Misclassified examples", '"hidden_size": 32', f"| {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} |"):
        assert needle in report
    params = json.loads(report.split("## Params")[1].split("```json")[1].split("```")[0])
    assert sorted(params) == ["bucket", "dataset", "evaluate", "ingest", "shard", "tokenize", "train", "vectors", "vocab"]
    assert params["dataset"]["name"] == "demo" and params["vectors"] == {"settings": None, "file": None, "vocab_words_covered": None}
    for png in ("confusion.png", "curves.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raw = json.loads((demo / "raw" / "stats.json").read_text())
    d = raw["duplicates"]["test"]
    assert (f"| test | 600 | {sum(raw['dropped']['test'].values())} | {d['repeated_rows']} | "
            f"{d['texts_with_conflicting_labels']} | {raw['overlap']['test_in_train']} |") in report

    p = Predictor(trained / "model.pt", demo / "vocab" / "vocab.tsv")
    out = p.predict(["The acting was truly wonderful. A must see.", "The plot was dreadful. Skip it.", "", "zzzz qqqq"])
    assert [r["label"] for r in out] == ["pos", "neg", None, None]
    assert abs(sum(out[0]["probs"].values()) - 1) < 1e-3
    assert out[2]["error"] == "empty text" and "unknown" in out[3]["error"]


def test_predict_cuts_long_texts_as_the_recorded_bucket_params_say(demo, trained):
    """predict keeps the tokens the bucket stage kept for training: head and tail by the checkpoint's
    bucket params; a checkpoint from before keep_head existed keeps the start only, as it was trained."""
    words = "good boring plot acting wonderful dreadful film great bad story must see".split()
    ckpt = load_checkpoint(trained / "model.pt", demo / "vocab" / "vocab.tsv")
    vocab = Vocabulary.load(demo / "vocab" / "vocab.tsv")
    assert all(vocab.encode([w]) != [UNK_ID] for w in words)
    results = {}
    for name, bucket, kept in [("head_tail", {"max_len": 6, "keep_head": 0.5}, words[:3] + words[-3:]),
                               ("before_keep_head", {"max_len": 6}, words[:6])]:
        p = Predictor.__new__(Predictor)
        p._setup({**ckpt, "preprocess": {**ckpt["preprocess"], "bucket": bucket}}, vocab, "cpu")
        whole, cut = p.predict([" ".join(words), " ".join(kept)])
        assert whole["probs"] == cut["probs"], name
        results[name] = whole["probs"]
    assert results["head_tail"] != results["before_keep_head"]


def test_report_data_section_counts_and_warns_about_overlap():
    from pipeline.report import data_section

    data = {"rows": {"train": 1000, "test": 60}, "dropped": {"train": {"null_text": 2, "empty_text": 1}, "test": {}},
            "duplicates": {"train": {"repeated_rows": 7, "texts_with_conflicting_labels": 3},
                           "test": {"repeated_rows": 0, "texts_with_conflicting_labels": 0}},
            "overlap": {"test_in_train": 56}}
    text = "\n".join(data_section(data))
    assert "| train | 1,000 | 3 | 7 | 3 |  |" in text and "| test | 60 | 0 | 0 | 0 | 56 |" in text
    assert "**Warning:** 56 test rows have a text that is also in train" in text
    assert "Warning" not in "\n".join(data_section({**data, "overlap": {"test_in_train": 0}}))


def test_example_draw_keeps_wrong_rows_uniformly_whatever_the_batches():
    actual = np.array([0, 1, 1, 0, 1, 0, 2, 2])
    predicted = np.array([0, 0, 1, 1, 0, 0, 1, 2])
    raw = np.array([70, 10, 60, 30, 20, 50, 40, 0])  # raw row numbers, not in stream order
    p = np.linspace(0.5, 0.9, 8).astype(np.float32)

    def draw(n, cuts, seed=0):
        d = ExampleDraw(n, seed)
        for lo, hi in zip([0, *cuts], [*cuts, 8]):
            d.add(raw[lo:hi], actual[lo:hi], predicted[lo:hi], p[lo:hi])
        return [a.tolist() for a in d.picked()]

    everything = draw(8, [3])
    assert everything[:3] == [[10, 20, 30, 40], [1, 1, 0, 2], [0, 0, 1, 1]]  # the 4 wrong rows, raw row order
    assert everything[3] == [p[1], p[4], p[3], p[6]]
    assert draw(2, [3]) == draw(2, []) == draw(2, [1, 2, 5, 7])  # the same rows however the stream is cut
    assert len(draw(2, [])[0]) == 2 and draw(0, [4])[0] == [] and draw(8, [], seed=0)[0] == draw(8, [5])[0]
    picked = collections.Counter(r for seed in range(2000) for r in draw(2, [3], seed)[0])
    assert sorted(picked) == [10, 20, 30, 40] and all(900 < c < 1100 for c in picked.values())  # 1,000 each
    none = ExampleDraw(5)
    none.add(raw, actual, actual, p)
    assert [a.tolist() for a in none.picked()] == [[], [], [], []]


def test_checkpoint_from_other_vocab_is_refused(trained, tmp_path):
    other = tmp_path / "v.tsv"
    other.write_text("<pad>\t0\n<unk>\t0\nx\t1\n")
    with pytest.raises(PipelineError, match="trained with another vocabulary"):
        load_checkpoint(trained / "model.pt", other)
    with pytest.raises(PipelineError, match="not found; run `textpipe train`"):
        load_checkpoint(tmp_path / "nope" / "model.pt")


def test_classification_metrics_exact():
    cm = confusion_counts(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    m = classification_metrics(cm, ["a", "b", "c"])
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["accuracy"] == 0.6
    assert m["per_class"]["b"] == {"precision": round(2 / 3, 6), "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["c"]["f1"] == 0.0


def test_predict_cli_reads_stdin_and_reports_missing_model(demo, trained, tmp_path, write_params):
    params = write_params()
    # one result per line, the blank one too: the results line up with the input's lines
    table = run_cli("predict", "--params", params, "--model", trained, "--vocab", demo / "vocab" / "vocab.tsv",
                    input="The ending was superb. A must see.\n\nThe cast was awful. Skip it.\n")
    rows = [line.split("\t") for line in table.stdout.splitlines()]
    assert [r[0] for r in rows] == ["pos", "-", "neg"] and rows[1] == ["-", "empty text", ""], table.stdout
    assert table.stderr == "warning: 1 text(s) could not be classified (empty or all words unknown)\n"
    # JSON lines: each result carries the record's other fields, a field named like a result's too
    jsonl = run_cli("predict", "--params", params, "--model", trained, "--vocab", demo / "vocab" / "vocab.tsv", "--json",
                    "--jsonl", "body", input='{"id": 1, "body": "The ending was superb. A must see.", "label": "gold"}\n'
                                             '\n{"body": "", "id": 2}\n')
    assert [(r["record"], r["label"], r["text"]) for r in map(json.loads, jsonl.stdout.splitlines())] == [
        ({"id": 1, "label": "gold"}, "pos", "The ending was superb. A must see."), ({"id": 2}, None, "")]
    proc = run_cli("predict", "--params", params, "--model", tmp_path / "none", "--vocab", demo / "vocab" / "vocab.tsv",
                   "good", check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"Error: model {tmp_path / 'none' / 'model.pt'} not found; run `textpipe train` (or `dvc repro train`) first\n"
    # invalid UTF-8 on stdin or in a file: one line, no traceback
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text\nbad \xff byte\n")
    args = ["predict", "--params", params, "--model", trained, "--vocab", demo / "vocab" / "vocab.tsv"]
    for extra, name in (([], "standard input"), (["--file", bad], str(bad))):
        exe = subprocess.run(["textpipe", *map(str, args + extra)], input=bad.read_bytes(), capture_output=True)
        assert exe.returncode == 2
        assert exe.stderr.decode() == f"Error: {name} is not valid UTF-8 (line 2, byte offset 14); re-save it as UTF-8\n"


def test_predict_stream_reads_one_block_ahead_and_equals_predict(demo, trained):
    from pipeline.predict import Predictor

    p = Predictor(trained / "model.pt", demo / "vocab" / "vocab.tsv")
    texts = ["", "zzzz qqqq"] + [f"review {i}: " + " ".join(["good"] * (i % 7) + ["boring"] * (i % 5)) for i in range(2500)]
    pulled = []

    def source():
        for i, text in enumerate(texts):
            pulled.append(i)
            yield text

    stream = p.predict_stream(source(), block=1000)
    first = next(stream)
    assert len(pulled) == 1000  # the first results come after one block is read, not the input
    streamed = [first, *stream]
    whole = p.predict(texts)
    assert [r["text"] for r in streamed] == texts and [r["label"] for r in streamed] == [r["label"] for r in whole]
    for a, b in zip(streamed, whole):  # other batches, same results (to the float rounding of a batch)
        assert a.get("error") == b.get("error")
        assert a["probs"] is None or all(abs(a["probs"][k] - b["probs"][k]) < 1e-4 for k in a["probs"])


def test_predict_cli_prints_the_blocks_before_an_invalid_line(demo, trained, tmp_path, write_params):
    """A file is classified as it is read: an invalid byte on line 8,195 stops the run with one line
    naming it, after the first block's 8,192 results were printed, in input order."""
    lines = [f"a good film, number {i}\n".encode() for i in range(8200)]
    lines[8194] = b"a bad \xff byte\n"
    (tmp_path / "many.txt").write_bytes(b"".join(lines))
    args = ["--params", write_params(), "--model", trained, "--vocab", demo / "vocab" / "vocab.tsv", "--json"]
    proc = run_cli("predict", *args, "--file", tmp_path / "many.txt", check=False)
    assert proc.returncode == 2
    offset = sum(map(len, lines[:8194])) + len(b"a bad ")
    assert proc.stderr == f"Error: {tmp_path / 'many.txt'} is not valid UTF-8 (line 8195, byte offset {offset}); re-save it as UTF-8\n"
    assert [json.loads(line)["text"] for line in proc.stdout.splitlines()] == [f"a good film, number {i}" for i in range(8192)]


def test_vectors_file_initialises_embeddings(demo, tmp_path):
    from pipeline.vectors import load_vectors
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
    cfg = {**FAST_TRAIN, "embed_dim": 4, "vectors": str(vec), "max_steps": 3, "epochs": 1}
    trainer, _ = fit(demo, tmp_path / "m", cfg)
    assert trainer.vectors_covered == 2
    assert json.loads((tmp_path / "m" / "stats.json").read_text())["vectors_covered"] == 2
    for line, message in (("was 0.5 x 0.5 0.5", ":3 has 'x' where a number belongs"),
                          ("was 0.5 nan 0.5 0.5", ":3 has a value that is not a finite number"),
                          ("notaword inf 9 9 9", ":3 has a value that is not a finite number")):  # even unused words
        vec.write_text(f"3 4\nthe 1 2 3 4\n{line}\n")
        with pytest.raises(PipelineError, match=message):
            load_vectors(vec, vocab, 4)


def test_a_diverging_loss_stops_training_in_one_line_and_writes_no_model(demo, tmp_path):
    vec = tmp_path / "huge.txt"  # finite, but their products overflow: inf, then nan
    vec.write_text("".join(f"{w} 3e38 3e38 3e38 3e38\n" for w in ("the", "a", "and", "was", "film", "movie")))
    with pytest.raises(PipelineError, match=r"the training loss became nan at epoch 1, step 1: training diverged, "
                                            r"and no model was written; lower train.lr \(now 0.005\)"):
        fit(demo, tmp_path / "m", {**FAST_TRAIN, "embed_dim": 4, "vectors": str(vec)})
    assert not (tmp_path / "m").exists()


def test_exported_model_predicts_like_the_project_from_any_folder(demo, trained, tmp_path):
    from pipeline.predict import EXPORT_FORMAT, export_model

    out = tmp_path / "ship" / "sentiment.textpipe"
    info = export_model(trained / "model.pt", demo / "vocab" / "vocab.tsv", demo / "raw", out)
    assert info["labels"] == ["neg", "pos"] and info["dataset"] == "demo"
    bundle = torch.load(out, weights_only=True)  # plain tensors and values: no pickled code
    assert bundle["format"] == EXPORT_FORMAT and bundle["vocab"][:2] == ["<pad>", "<unk>"]
    assert bundle["preprocess"]["tokenize"]["lowercase"] is True
    texts = ["The acting was truly wonderful. A must see.", "The plot was dreadful. Skip it.", "", "zzzz qqqq"]
    texts += [f"review {i}: " + " ".join(["good"] * (i % 7) + ["boring"] * (i % 5)) for i in range(300)]
    in_project = Predictor(trained / "model.pt", demo / "vocab" / "vocab.tsv").predict(texts)
    shipped = Predictor.load(out).predict(texts)
    one_by_one = [Predictor.load(out).predict([t], batch_size=1)[0] for t in texts[:40]]
    assert [r["label"] for r in shipped] == [r["label"] for r in in_project]
    for a, b in zip(shipped, in_project):
        assert a.get("probs") == b.get("probs") and a.get("error") == b.get("error")
    for a, b in zip(one_by_one, shipped):  # batching (256 a pass, longest first) changes no result
        assert a["label"] == b["label"] and (a["probs"] is None or all(abs(a["probs"][k] - b["probs"][k]) < 1e-4 for k in a["probs"]))
    # From an empty folder: no params.yaml, JSON lines in, JSON lines with probabilities out.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lines = "".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(texts[:2]))
    proc = run_cli("predict", "--model", out, "--jsonl", "body", "--json", cwd=elsewhere, input=lines)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == [r["label"] for r in in_project[:2]] == ["pos", "neg"]
    assert [r["probs"] for r in rows] == [r["probs"] for r in in_project[:2]]
    bad = run_cli("predict", "--model", out, "--device", "cuda", "x", cwd=elsewhere, check=False)
    if not torch.cuda.is_available():
        assert bad.returncode == 2 and bad.stderr.startswith("Error: predict --device is 'cuda' but this machine has no CUDA")


def test_heartbeat_prints_progress_lines_off_terminal(capsys):
    from pipeline.progress import Heartbeat

    beat = Heartbeat("epoch 3", 200, every=0.0)  # stderr is captured here, so not a terminal
    beat.tick(50, "loss 0.5000 acc 0.812")
    beat.tick(200)
    assert capsys.readouterr().err == "epoch 3: 50/200 (25%) loss 0.5000 acc 0.812\nepoch 3: 200/200 (100%)\n"
    quiet = Heartbeat("epoch 3", 200)  # the default: at most one line every 30 s
    quiet.tick(1)
    assert capsys.readouterr().err == ""


def test_threads_default_to_omp_num_threads_else_the_cores_split_over_processes(monkeypatch):
    import os

    from pipeline.cpu_share import usable_cores
    from pipeline.distributed import default_threads

    cores = usable_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (default_threads(1), default_threads(2)) == (3, 3)
    for unusable in ("", "0", "abc", "2,1"):  # not a positive count: the cores, split
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert (default_threads(1), default_threads(2)) == (cores, max(1, cores // 2)), unusable
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads(1) == cores


def test_csv_rows_are_written_as_a_generator_yields_them(tmp_path):
    """write_csv streams: the temporary file grows while the rows are still being made, and the bytes
    are the csv module's, quoting included."""
    out = tmp_path / "pairs.csv"
    seen = []

    def rows():
        for i in range(50_000):
            if i == 40_000:  # 40,000 rows in: already on disk, in the temporary sibling
                seen.extend(p.stat().st_size for p in tmp_path.iterdir())
            yield ("a, \"quoted\"\nname" if i == 0 else "neg", i)

    write_csv(out, ["actual", "predicted"], rows())
    assert len(seen) == 1 and seen[0] > 100_000  # one file then: the temporary one, already 100 kB+
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[:3] == ["actual,predicted", '"a, ""quoted""', 'name",0']
    assert lines[3:5] == ["neg,1", "neg,2"] and lines[-2:] == ["neg,49999", ""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]
