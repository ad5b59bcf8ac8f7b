"""The DVC experience end to end, with the real `dvc` binary in a fresh git repository."""
import json
import os
import re
import time

import pytest
import yaml

from .helpers import ALL_STAGES, PIPELINE_EDGES, code_closure, dvc, make_project, ran_stages, run_cli

ALL = ALL_STAGES
QUICK_TRAIN = {"epochs": 2, "embed_dim": 16, "hidden_size": 16, "patience": 0, "min_batches": 0}


def set_params(project, **blocks):
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for block, values in blocks.items():
        params[block].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("proj") / "textpipe")
    set_params(root, train=QUICK_TRAIN, vectors={"dim": QUICK_TRAIN["embed_dim"]})
    return root


@pytest.mark.slow
def test_repro_runs_everything_then_nothing(project):
    out = dvc("repro", cwd=project).stdout
    assert ran_stages(out) == ALL
    report = project / "artifacts" / "demo" / "eval" / "report.md"
    assert report.exists() and "## Confusion matrix" in report.read_text()
    # DVC metrics hold only figures to compare across runs; counts and hashes stay in stats files
    figures = {name: json.loads((project / "artifacts" / "metrics" / f"{name}.json").read_text())
               for name in ("tokenize", "vocab", "vectors", "bucket", "train", "eval")}
    assert {name: sorted(f) for name, f in figures.items()} == {
        "tokenize": ["seconds", "tokens_per_s"], "vocab": ["unk_rate"],
        "vectors": ["seconds", "train_token_coverage", "vocab_coverage"], "bucket": ["padding_waste"],
        "train": ["best_epoch", "seconds", "tokens_per_s", "val_acc", "val_loss"],
        "eval": ["accuracy", "baseline_accuracy", "baseline_macro_f1", "loss", "macro_f1", "margin"]}
    assert sorted(figures["vocab"]["unk_rate"]) == sorted(figures["bucket"]["padding_waste"]) == ["test", "train", "validation"]
    # predict reads the model this repro trained (how right it is with the shipped params: test_readme)
    proc = run_cli("predict", "--json", "The acting was truly superb. Highly recommended.", cwd=project)
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["label"] == max(row["probs"], key=row["probs"].get) and abs(sum(row["probs"].values()) - 1) < 1e-3
    # a bytecode cache appearing in pipeline/core (a directory dep of every stage) changes nothing (.dvcignore)
    cache = project / "pipeline" / "core" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "config.cpython-399.pyc").write_bytes(b"\x00compiled elsewhere")
    t = time.perf_counter()
    again = dvc("repro", cwd=project).stdout
    elapsed = time.perf_counter() - t
    # check runs on every repro (it fingerprints data files); its output is unchanged, so nothing else runs
    assert ran_stages(again) == ["check"], again
    assert [s for s in ALL if f"Stage '{s}' didn't change, skipping" in again] == ALL[1:], again
    print(f"no-op dvc repro: {elapsed:.2f}s")  # reported in BENCHMARKS.md, not asserted (shared machine)
    status = dvc("status", cwd=project).stdout
    assert status.split() == ["check:", "always", "changed"], status


@pytest.mark.slow
@pytest.mark.parametrize("block,change,expected", [
    ("evaluate", {"examples": 3}, ["evaluate"]),
    # train.lr, train.nproc=2 and vectors.method=word2vec: the README test runs all three and checks
    # which stages ran (test_readme.py)
    ("vocab", {"max_size": 100}, ["vocab", "vectors", "bucket", "shard", "train", "evaluate"]),
    ("tokenize", {"lowercase": False}, ["tokenize", "vocab", "vectors", "bucket", "shard", "train", "evaluate"]),
    # same tokens, same bytes: tokenize reruns and DVC stops there
    ("tokenize", {"workers": 1, "chunk_size": 333}, ["tokenize"]),
])
def test_param_change_reruns_exactly_downstream(project, block, change, expected):
    dvc("repro", cwd=project)
    set_params(project, **{block: change})
    # `check` reads every block, so it reruns first whenever a param changes (its output stays the same)
    assert ran_stages(dvc("repro", cwd=project).stdout) == ["check", *expected]


@pytest.mark.slow
def test_unsafe_dataset_names_stop_dvc_repro_with_one_line(project):
    dvc("repro", cwd=project)
    for folder in ("eval", "raw"):  # a user's own folders where `..` would point DVC
        (project / folder).mkdir(exist_ok=True)
        (project / folder / "notes.txt").write_text("mine\n")
    before = sorted(p.name for p in project.iterdir())
    artifacts = sorted(p.name for p in (project / "artifacts").iterdir())
    original = (project / "params.yaml").read_text()
    try:
        for name in ("..", "x;echo INJECTED>injected.txt;#", "a$(touch pwned)", "b`touch pwned2`", "/tmp/abs", "my data"):
            set_params(project, dataset={"name": name})
            proc = dvc("repro", cwd=project, check=False)
            out = proc.stdout + proc.stderr
            assert proc.returncode != 0 and ran_stages(out) == ["check"], out
            errors = [line for line in out.splitlines() if line.startswith("Error:")]
            assert errors == [f"Error: dataset.name {name!r} is not a safe folder name; use letters, digits, '_', '-' "
                              "and '.' (not first), at most 100 characters, e.g. 'imdb' or 'tickets-2024'"], out
            assert "Traceback" not in out
            assert sorted(p.name for p in project.iterdir()) == before, name
            # DVC removes the check stage's own stamp before running it; nothing else under artifacts/ changes
            now = sorted(p.name for p in (project / "artifacts").iterdir())
            assert now == [a for a in artifacts if a != "check.json"], name
            assert not (project / "injected.txt").exists() and not (project / "pwned").exists()
        for folder in ("eval", "raw"):
            assert (project / folder / "notes.txt").read_text() == "mine\n"
    finally:
        (project / "params.yaml").write_text(original)


@pytest.mark.slow
def test_swap_dataset_and_back_from_run_cache(project, tmp_path):
    dvc("repro", cwd=project)
    data = tmp_path / "reviews"
    data.mkdir()
    rows = ["review,stars"] + [f'"{w} movie, {w} acting",{s}' for w, s in
                               [("great", "good"), ("awful", "bad"), ("lovely", "good"), ("boring", "bad")] * 30]
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    subprocess_args = ["-S", "dataset.name=mine", "-S", "dataset.source=files", "-S", f"dataset.path={data}",
                       "-S", "dataset.text_column=review", "-S", "dataset.label_column=stars", "-S", "dataset.labels=[bad,good]"]
    out = dvc("exp", "run", *subprocess_args, cwd=project).stdout
    assert ran_stages(out) == ALL
    assert (project / "artifacts" / "mine" / "eval" / "report.md").exists()
    metrics = json.loads((project / "artifacts" / "mine" / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["rows"] == 12

    back = ["-S", "dataset.name=demo", "-S", "dataset.source=null", "-S", "dataset.path=null",
            "-S", "dataset.text_column=null", "-S", "dataset.label_column=null", "-S", "dataset.labels=null"]
    out = dvc("exp", "run", *back, cwd=project).stdout
    assert ran_stages(out) == ["check"], out
    assert (project / "artifacts" / "demo" / "shards" / "manifest.json").exists()
    assert "restored" in out.lower() or "skipping run" in out.lower() or "didn't change" in out.lower()

    shown = dvc("exp", "show", "--no-pager", "--csv", cwd=project).stdout
    assert "accuracy" in shown and "dataset.name" in shown
    assert "accuracy" in dvc("metrics", "show", cwd=project).stdout
    mine = next(line.split(",") for line in shown.splitlines() if ",mine," in line)
    exp = mine[0] or mine[1]  # experiment name, else its revision
    diff = dvc("params", "diff", "HEAD", exp, cwd=project).stdout + dvc("metrics", "diff", "HEAD", exp, cwd=project).stdout
    assert "dataset.name" in diff and "accuracy" in diff, diff
    html = tmp_path / "plots"
    dvc("plots", "show", "-o", html, cwd=project)
    assert (html / "index.html").exists()

    # Switching by editing params.yaml + `dvc repro`: restored from the run-cache, and both
    # datasets' artifacts are in the workspace side by side.
    set_params(project, dataset={"name": "mine", "source": "files", "path": str(data), "text_column": "review",
                                 "label_column": "stars", "labels": ["bad", "good"]})
    out = dvc("repro", cwd=project).stdout
    assert ran_stages(out) == ["check"], out
    for name in ("demo", "mine"):
        assert (project / "artifacts" / name / "shards" / "manifest.json").exists(), name
        assert (project / "artifacts" / name / "model" / "model.pt").exists(), name
    # Editing the data file is noticed: check fingerprints it, ingest reruns. Here the edit is CRLF
    # line ends (same rows), so raw/ is byte-identical and DVC stops after ingest.
    train_csv = data / "train.csv"
    train_csv.write_bytes(train_csv.read_bytes().replace(b"\n", b"\r\n"))
    raw = (project / "artifacts" / "mine" / "raw" / "checksums.json").read_bytes()
    assert ran_stages(dvc("repro", cwd=project).stdout) == ["check", "ingest"]
    assert (project / "artifacts" / "mine" / "raw" / "checksums.json").read_bytes() == raw
    os.utime(train_csv, (time.time() + 60, time.time() + 60))  # new mtime, same content: nothing reruns
    assert ran_stages(dvc("repro", cwd=project).stdout) == ["check"]
    set_params(project, dataset={k: None for k in ("source", "path", "text_column", "label_column", "labels")} | {"name": "demo"})


@pytest.mark.slow
def test_dag_order_and_standalone_stage(project):
    dvc("repro", cwd=project)
    dag = dvc("dag", "--md", cwd=project).stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', dag))
    edges = {(names[a], names[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", dag)}
    assert set(PIPELINE_EDGES) <= edges, edges
    # The same stage by hand, same params file: same vocabulary bytes.
    before = (project / "artifacts/demo/vocab/vocab.tsv").read_bytes()
    run_cli("vocab", cwd=project)
    assert (project / "artifacts/demo/vocab/vocab.tsv").read_bytes() == before


@pytest.mark.slow
def test_editing_a_module_reruns_every_stage_that_imports_it(project):
    dvc("repro", cwd=project)
    module = project / "pipeline" / "vocab.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit that changes nothing the stages write\n")
    try:
        importers = [s for s in ALL if "pipeline/vocab.py" in code_closure(f"stages.{s}")]
        assert "bucket" in importers and "shard" not in importers
        vectors = project / "artifacts" / "demo" / "vectors" / "vectors.txt"
        before = vectors.read_bytes()
        ran = ran_stages(dvc("repro", cwd=project).stdout)
        assert ran == [s for s in ALL if s in importers or s == "check"], ran  # check runs on every repro
        # vectors reran (it reads the vocabulary); one word2vec thread (the default) is bit-for-bit repeatable
        assert "vectors" in ran and vectors.read_bytes() == before
    finally:  # the last test of this module: nothing after it needs the pipeline rerun
        module.write_text(original)
