"""Every shell command in README.md runs here, verbatim and in README order, in a fresh git + DVC
project, so the README cannot rot. The user's side of each command (their data folder, a
reviews file, ../shared/data beside the clone) is set up first: small slices of the real
datasets keep it quick, and where ../shared/data is absent the demo corpus stands in."""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .helpers import ALL_STAGES, PIPELINE_EDGES, REPO, SHARED, dvc, make_project, ran_stages

ALL = ALL_STAGES
SLICE_ROWS = 120  # rows per split file of the ../shared/data stand-ins (half per class)
INSTALL_PREFIXES = ("python3 -m venv", ". .venv/bin/activate", "pip install")
TEST_COMMAND_SEGMENT = "python -m pytest"


def readme_commands(text: str) -> list[str]:
    """Commands of the ```bash blocks, in order; backslash continuations joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            if command.strip():
                commands.append(command.strip())
    return commands


def runnable_part(command: str) -> str | None:
    """The install one-liners at the top: CI runs the install; here run what follows it."""
    segments = [s.strip() for s in command.split(" && ")]
    if not any(s.startswith(INSTALL_PREFIXES) for s in segments):
        return command
    rest = [s for s in segments if not s.startswith(INSTALL_PREFIXES) and s != TEST_COMMAND_SEGMENT]
    return " && ".join(rest) or None


def test_readme_commands_are_found_and_the_test_command_is_what_ci_runs():
    commands = readme_commands((REPO / "README.md").read_text())
    install = [c for c in commands if "pip install" in c]
    assert len(install) == 2
    test_command = next(c for c in install if c.endswith(TEST_COMMAND_SEGMENT))
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()
    assert runnable_part(test_command) is None
    assert runnable_part(install[0]) == "dvc repro"
    assert "dvc dag" in [c.split("#")[0].strip() for c in commands]
    tools = {c.split()[0] for c in commands}
    assert tools == {"python3", "dvc", "git", "textpipe", "cat", "mkdir", "(cd"}, tools  # nothing a user lacks


STAND_IN_SPLITS = {"imdb": ("train", "test"), "sst2": ("train", "validation")}


def _stand_in(name: str, dest: Path) -> None:
    """A small ../shared/data/<name>: the first rows of each class of the real files when they
    are here, else the demo corpus in the same layout (Parquet, `text`, integer `label`)."""
    dest.mkdir(parents=True, exist_ok=True)
    real = SHARED / name
    for split in STAND_IN_SPLITS[name]:
        if real.is_dir():
            table = pq.read_table(real / f"{split}.parquet")
        else:
            demo = REPO / "pipeline" / "demo_data" / ("train.jsonl" if split == "train" else "test.jsonl")
            rows = [json.loads(line) for line in demo.read_text().splitlines()]
            table = pa.table({"text": [r["text"] for r in rows], "label": [int(r["label"] == "pos") for r in rows]})
        labels = table.column("label").to_pylist()
        keep = []
        for label in sorted(set(labels)):
            keep += [i for i, v in enumerate(labels) if v == label][: SLICE_ROWS // 2]
        pq.write_table(table.take(sorted(keep)), dest / f"{split}.parquet")
    (dest / "labels.json").write_text('["neg", "pos"]\n')  # as ../shared/data has; not text


def _user_side(work: Path, project: Path) -> None:
    for name in STAND_IN_SPLITS:
        _stand_in(name, work / "shared" / "data" / name)
    tickets = project / "data" / "tickets"
    tickets.mkdir(parents=True)
    texts = {"billing": "my invoice shows a double charge on the card",
             "tech": "the app crashes when I open the settings page",
             "sales": "can I get a quote for fifty team licenses"}
    rows = ["body,queue"] + [f'"{text} (#{i})",{queue}' for i in range(30) for queue, text in texts.items()]
    (tickets / "train.csv").write_text("\n".join(rows) + "\n")
    (project / "reviews.txt").write_text("a moving, beautiful film\nthe worst thing I have seen this year\n")


def _checks(project: Path) -> dict:
    """What the user must see after particular README commands (beyond exit status 0)."""
    art = project / "artifacts"

    def first_repro(out: str) -> None:
        assert ran_stages(out) == ALL, out
        assert "## Confusion matrix" in (art / "demo" / "eval" / "report.md").read_text()
        # by default the embedding starts from word2vec on the demo's train split, one thread
        vectors = json.loads((art / "demo" / "vectors" / "stats.json").read_text())
        assert [s["source"] for s in vectors["sources"]] == ["train split"] and vectors["vocab_words_covered"] > 0
        used = json.loads((art / "demo" / "model" / "stats.json").read_text())
        assert (used["vectors"], used["vectors_covered"]) == ("artifacts/demo/vectors/vectors.txt",
                                                              vectors["vocab_words_covered"]), used

    def nothing_runs(out: str) -> None:
        # check runs on every repro (it fingerprints data files); nothing else does
        assert ran_stages(out) == ["check"] and "Stage 'evaluate' didn't change, skipping" in out, out

    def lr_change(out: str) -> None:
        assert ran_stages(out) == ["check", "train", "evaluate"], out

    def real_dataset(name: str, split: str):
        def check(out: str) -> None:
            assert ran_stages(out) == ALL, out
            metrics = json.loads((art / name / "eval" / "metrics.json").read_text())
            assert (metrics["split"], metrics["rows"]) == (split, SLICE_ROWS), metrics
            assert sorted(json.loads((art / "metrics" / "eval.json").read_text())) == [
                "accuracy", "baseline_accuracy", "baseline_macro_f1", "loss", "macro_f1", "margin"]
            assert (art / name / "eval" / "report.md").exists()
        return check

    def status_only_check(out: str) -> None:
        assert out.split() == ["check:", "always", "changed"], out  # nothing but the data-file check is due

    def back_from_run_cache(out: str) -> None:
        assert ran_stages(out) == ["check"], out
        assert "skipping" in out, out
        assert (art / "demo" / "shards" / "manifest.json").exists()

    def tickets(out: str) -> None:
        assert ran_stages(out) == ALL, out
        metrics = json.loads((art / "tickets" / "eval" / "metrics.json").read_text())
        assert sorted(metrics["per_class"]) == ["billing", "sales", "tech"]

    def forced_ingest(out: str) -> None:
        # forced: ingest and what is upstream of it (check); same files, same bytes out: nothing downstream reruns
        assert ran_stages(out) == ["check", "ingest"], out

    def queue_done(out: str) -> None:
        # the same files as the runs above under another spelling of their path: ingest reruns
        # (its params changed) and writes the same bytes, so everything after it is restored
        assert set(ran_stages(out)) == {"check", "ingest"}, out
        shown = dvc("exp", "show", "--no-pager", "--csv", cwd=project).stdout
        names = set()
        for row in csv_rows(shown):
            name = next((v for k, v in row.items() if k.endswith("dataset.name")), None)
            if any(v for k, v in row.items() if k.endswith(":accuracy") or k == "accuracy"):
                names.add(name)
        assert {"imdb", "sst2"} <= names, shown

    def exp_table(out: str) -> None:
        # one row per run: the workspace, the committed baseline and the experiments run above
        exps = dvc("exp", "list", "--name-only", "-A", cwd=project).stdout.split()
        assert len(exps) >= 6, exps
        assert [e for e in exps if f"[{e}]" not in out] == [], out
        header = next(line for line in out.splitlines() if "Experiment" in line).split()
        assert header == ["Experiment", "accuracy", "macro_f1", "dataset.name", "vocab.max_size", "train.lr"], out
        rows = [line for line in out.splitlines() if "[" in line]
        assert all(re.search(r"\] +(0\.\d+|1\.0?|1) ", row) for row in rows), out  # every run shows its accuracy

    def per_dataset_table(out: str) -> None:
        assert "dataset.name" in out and "accuracy" in out and "macro_f1" in out, out
        assert "imdb" in out and "sst2" in out and "demo" in out, out

    def dag(out: str) -> None:
        for upstream, downstream in PIPELINE_EDGES:  # drawn top to bottom
            assert out.index(f"| {upstream} |") < out.index(f"| {downstream} |"), out

    def sst2_with_vectors(out: str) -> None:
        # tokens, vocab and shards come back from the run-cache; only the vectors change
        assert ran_stages(out) == ["check", "vectors", "train", "evaluate"], out
        stats = json.loads((art / "sst2" / "vectors" / "stats.json").read_text())
        assert [Path(s["source"]).name for s in stats["sources"]] == ["train split", "test.parquet", "train.parquet"]
        assert stats["vocab_words_covered"] > 0
        used = json.loads((art / "sst2" / "model" / "stats.json").read_text())
        assert used["vectors"] == "artifacts/sst2/vectors/vectors.txt"
        assert used["vectors_covered"] == stats["vocab_words_covered"]

    def ray_local(out: str) -> None:
        # the same token and vocabulary bytes as the local engine: nothing after vocab reruns
        assert ran_stages(out) == ["check", "tokenize", "vocab"], out
        assert '"engine": "ray"' in out, out

    def two_processes(out: str) -> None:
        assert ran_stages(out) == ["check", "train", "evaluate"], out
        assert '"processes": 2' in out, out

    def plots(out: str) -> None:
        assert (project / "dvc_plots" / "index.html").exists(), out

    def predicted_two(out: str) -> None:
        # label, probabilities, text: one line per input text, in order; the demo model (shipped
        # defaults) gets these plain sentences right
        lines = [line.split("\t") for line in out.strip().splitlines()]
        assert [(cells[0], cells[2]) for cells in lines] in (
            [("pos", "what a wonderful film"), ("neg", "the plot made no sense")],
            [("pos", "a moving, beautiful film"), ("neg", "the worst thing I have seen this year")]), out
        for label, probs, _ in lines:
            values = dict(p.split("=") for p in probs.split())
            assert sorted(values) == ["neg", "pos"] and abs(sum(map(float, values.values())) - 1) < 2e-3
            assert label == max(values, key=lambda k: float(values[k])), out

    def exported(out: str) -> None:
        info = json.loads(out)
        assert info["labels"] == ["neg", "pos"] and info["dataset"] == "demo", out
        assert (project / "sentiment.textpipe").stat().st_size == info["bytes"]

    def shipped_predictions(*labels: str, records=None):
        def check(out: str) -> None:
            rows = [json.loads(line) for line in out.strip().splitlines()]
            assert [r["label"] for r in rows] == list(labels), out
            assert [r.get("record") for r in rows] == (records or [None] * len(labels)), out
            assert all(abs(sum(r["probs"].values()) - 1) < 2e-3 for r in rows), out
            assert not (project / "shipped" / "params.yaml").exists()
        return check

    return {
        "textpipe export --out sentiment.textpipe": exported,
        "(cd shipped && textpipe predict --model sentiment.textpipe --json": shipped_predictions("pos", "neg"),
        "(cd shipped && printf": shipped_predictions("pos", records=[{"id": 7}]),  # the record's other fields
        "dvc repro#1": first_repro,
        "dvc repro#2": nothing_runs,
        "dvc repro#3": nothing_runs,
        "dvc exp run -S train.lr=0.001": lr_change,
        "dvc status": status_only_check,
        "dvc exp run -S dataset.name=imdb -S dataset.source=files": real_dataset("imdb", "test"),
        "dvc exp run -S dataset.name=sst2 -S dataset.source=files": real_dataset("sst2", "validation"),
        "git checkout params.yaml && dvc exp run": back_from_run_cache,
        "dvc exp run -S dataset.name=tickets": tickets,
        "dvc repro -f ingest": forced_ingest,
        "dvc exp run -S dataset.name=sst2 -S dataset.source=files -S dataset.path=../shared/data/sst2 "
        "-S dataset.text_column=text -S 'vectors.corpora=[../shared/data/imdb]'": sst2_with_vectors,
        "dvc exp run --run-all": queue_done,
        "dvc exp show --no-pager --drop '.*' --keep 'Experiment|dataset.name|^accuracy": per_dataset_table,
        "dvc exp show --no-pager --drop '.*' --keep 'Experiment|dataset.name|train.lr": exp_table,
        "dvc dag": dag,
        "dvc exp run -S tokenize.engine=ray -S vocab.engine=ray": ray_local,
        "dvc exp run -S train.nproc=2": two_processes,
        "dvc plots show": plots,
        "textpipe predict": predicted_two,
        "cat reviews.txt | textpipe predict": predicted_two,
    }


def csv_rows(text: str):
    return csv.DictReader(io.StringIO(text))


TERMINAL = {**os.environ, "COLUMNS": "120"}
OFFLINE_HUB = "dvc exp run -S dataset.name=imdb"  # the hub preset: offline here, so it must fail clearly


@pytest.mark.slow
def test_every_readme_command_runs_in_order(tmp_path):
    work = tmp_path / "work"
    project = make_project(work / "textpipe")
    _user_side(work, project)  # the shipped params, as a user runs them: the predictions below are the shipped model's
    checks = _checks(project)
    readme = (REPO / "README.md").read_text()
    commands = [c for c in map(runnable_part, readme_commands(readme)) if c]
    checked = set()
    try:
        _run_in_order(commands, project, checks, checked)
    finally:  # stages that use Ray start and stop their own; make sure nothing is left behind
        if shutil.which("ray"):
            subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)
    assert checked == set(checks) | {OFFLINE_HUB}, set(checks) - checked
    # the README's Python example, on the model the export above wrote
    (example,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    proc = subprocess.run([sys.executable, "-c", example], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["pos", "neg"], proc.stdout


def _run_in_order(commands, project, checks, checked):
    seen: dict[str, int] = {}
    for command in commands:
        bare = command.split(" #")[0].strip()
        seen[bare] = seen.get(bare, 0) + 1
        # as in a user's terminal: `dvc exp show` squeezes its table to COLUMNS
        proc = subprocess.run(["bash", "-c", command], cwd=project, capture_output=True, text=True, env=TERMINAL)
        out = proc.stdout + proc.stderr
        if bare == OFFLINE_HUB:
            assert proc.returncode != 0, out
            assert "offline mode is on: use a local copy with dataset.source=files" in out, out
            assert "Traceback" not in out, out
            checked.add(OFFLINE_HUB)
            continue
        assert proc.returncode == 0, f"README command failed: {command}\n{out}"
        key = next((k for k in (f"{bare}#{seen[bare]}", bare) if k in checks), None)
        if key is None:
            key = max((k for k in checks if "#" not in k and bare.startswith(k)), key=len, default=None)
        if key:
            checks[key](out)
            checked.add(key)
