"""Interruptions and concurrency under DVC: SIGKILL or SIGINT at a random moment of tokenize, shard and
train, then `dvc repro`, gives outputs byte-identical to an uninterrupted run; two writers never race."""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time

import psutil
import pytest
import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.integrity import verify_dir

from .helpers import REPO, dvc, make_project, ran_stages, run_cli

NAME = "big"
KILLED = ("tokenize", "shard", "train")
OUT = {"tokenize": "tokens", "shard": "shards", "train": "model"}
PARAMS = {
    "tokenize": {"workers": 2, "chunk_size": 250},
    "shard": {"shard_size_mb": 0.02},
    "vectors": {"dim": 16},
    "train": {"epochs": 1, "max_steps": 120, "embed_dim": 16, "hidden_size": 16, "patience": 0, "resume_every": 10,
              "batch_size": 16},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The demo reviews four times over (each copy marked, so no duplicates): 9,600 train rows."""
    folder = tmp_path_factory.mktemp("corpus")
    rows = [json.loads(line) for line in (REPO / "pipeline" / "demo_data" / "train.jsonl").read_text().splitlines()]
    with open(folder / "train.jsonl", "w", encoding="utf-8") as f:
        for copy in range(4):
            for r in rows:
                f.write(json.dumps({"text": f"{r['text']} (copy {copy})", "label": r["label"]}) + "\n")
    (folder / "test.jsonl").write_text((REPO / "pipeline" / "demo_data" / "test.jsonl").read_text(), encoding="utf-8")
    return folder


def new_project(root, corpus):
    project = make_project(root)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["dataset"].update(name=NAME, source="files", path=str(corpus), labels=["neg", "pos"])
    for block, values in PARAMS.items():
        params[block].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    """A project of the corpus with every stage up to train run once; each test works on a copy
    (git repository, DVC cache and run-cache included), so the module builds it once."""
    project = new_project(tmp_path_factory.mktemp("built") / "p", corpus)
    dvc("repro", "train", cwd=project)
    return project


def copy_of(project, dest):
    shutil.copytree(project, dest, symlinks=True)
    return dest


def digest(project):
    """sha256 of every output file of the dataset (not the resume point, locks or temporaries)."""
    art = project / "artifacts" / NAME
    return {str(p.relative_to(art)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(art.rglob("*"))
            if p.is_file() and "resume" not in p.parts and not any(part.startswith(".") for part in p.relative_to(art).parts)}


def is_stage(p, stage):
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return False
    return any(c.endswith("textpipe") for c in cmd) and stage in cmd


def stage_process(parent, stage):
    """The main process of ``textpipe <stage>`` among ``parent``'s descendants (not its pool workers)."""
    try:
        found = [p for p in psutil.Process(parent.pid).children(recursive=True) if is_stage(p, stage)]
    except psutil.Error:
        return None
    pids = {p.pid for p in found}
    return next((p for p in found if p.ppid() not in pids), None)


def gone(processes):
    def dead(p):
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(dead(p) for p in processes)


def wait_for(predicate, timeout=120, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def mid_work(project, stage):
    """True once ``stage`` is surely working: its temporary output folder exists (tokenize, shard) or
    its first resume point is written (train)."""
    art = project / "artifacts" / NAME
    if stage == "train":
        return (art / "resume" / "last.pt").exists()
    return any(art.glob(f".{OUT[stage]}.*.tmp"))


def interrupt(project, stage, sig, rng):
    """Run `dvc repro -f -s <stage>`, send ``sig`` to the stage's process at a random moment of its
    work, and return DVC's stderr, or None when the stage had finished its work before the signal
    landed (a quick stage can: it then exits 0 with its output whole)."""
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        victim = wait_for(lambda: stage_process(proc, stage))
        wait_for(lambda: mid_work(project, stage) or proc.poll() is not None)
        time.sleep(rng.uniform(0.0, 0.02 if stage == "shard" else 0.3))
        assert proc.poll() is None, f"{stage} finished before it could be interrupted"
        family = [victim, *victim.children(recursive=True)]
        victim.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: gone(family), timeout=10, step=0.1)  # its workers did not outlive it
    if proc.returncode == 0:
        verify_dir(project / "artifacts" / NAME / OUT[stage], stage)
        return None
    return err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_stages_leave_nothing_accepted_and_repro_is_byte_identical(built, tmp_path, sig):
    project = copy_of(built, tmp_path / "p")
    assert ran_stages(dvc("repro", "train", cwd=project).stdout) == ["check"]  # the copy is up to date
    reference = digest(project)
    rng = random.Random(int(sig))
    interrupted = []
    for stage in KILLED:
        err = interrupt(project, stage, sig, rng)
        interrupted += [stage] if err is not None else []
        out = project / "artifacts" / NAME / OUT[stage]
        if sig == signal.SIGINT and err is not None:
            kept = " (its resume point is kept)" if stage == "train" else ""
            assert f"Interrupted: {stage} left no output{kept}; run dvc repro to start it again" in err, err
            assert "Traceback" not in err, err
        if out.exists():  # the signal came after the swap: then the folder is whole, never partial
            verify_dir(out, stage)
        run = dvc("repro", "train", cwd=project)  # reruns the stage, or restores its output from DVC's run-cache
        art = project / "artifacts" / NAME
        if list(art.glob(".*.tmp")):  # restored from the run-cache: no stage ran yet to sweep them
            assert ran_stages(run.stdout) == ["check"], run.stdout  # check runs on every repro; it sweeps nothing
            dvc("repro", "-f", "-s", stage, cwd=project)
        assert not list(art.glob(".*.tmp"))  # the killed run's temporaries are gone
        assert digest(project) == reference, stage
    # the shard stage takes a fraction of a second and may finish first; tokenize and train cannot
    assert {"tokenize", "train"} <= set(interrupted), interrupted


@pytest.mark.slow
def test_two_writers_never_race(built, tmp_path):
    project = copy_of(built, tmp_path / "p")
    # Two `dvc repro` at once in one workspace: DVC's lock stops the second; the first finishes whole.
    first = subprocess.Popen(["dvc", "repro", "-f", "-s", "train"], cwd=project, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: stage_process(first, "train") or first.poll() is not None)
        second = dvc("repro", "train", cwd=project, check=False)
        # DVC's lock: the workspace lock, or (once the first is inside a stage) its outputs' lock
        assert second.returncode != 0, second.stderr
        assert "Unable to acquire lock" in second.stderr or f"(PID {first.pid}): " in second.stderr, second.stderr
        first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0
    verify_dir(project / "artifacts" / NAME / "model", "train")
    # Two `textpipe train` into one folder: the second refuses in one line while the first holds the lock.
    settings = yaml.safe_load((project / "params.yaml").read_text())
    settings["train"].update(max_steps=0, epochs=3)
    (project / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    lock = project / "artifacts" / NAME / ".model.lock"
    one = subprocess.Popen(["textpipe", "train"], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: lock.exists() and lock.read_text() == str(one.pid))
        two = run_cli("train", cwd=project, check=False)
        assert two.returncode == 2
        assert two.stderr == (f"Error: artifacts/{NAME}/model is being written by another textpipe process "
                              f"(pid {one.pid}); wait for it to finish or stop it, then run again\n")
    finally:
        one.kill()
        one.wait(timeout=30)
    # The killed holder's lock does not block the next run.
    settings["train"].update(max_steps=5, epochs=1)
    (project / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    assert run_cli("train", cwd=project).returncode == 0


def test_stale_temporaries_of_dead_writers_are_swept(tmp_path):
    from pipeline.core.fileio import atomic_dir, write_json

    final = tmp_path / "tokens"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".tokens.{dead.pid}.abc123.tmp", tmp_path / f".tokens.{dead.pid}.0f0f0f0f.old"]
    live = tmp_path / f".tokens.{os.getppid()}.keep.tmp"  # a running writer's (our parent's pid): kept
    for d in (*stale, live):
        (d / "sub").mkdir(parents=True)
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "tokens"])
    assert (final / "a.txt").read_text() == "x"
    assert oct(final.stat().st_mode & 0o777) == "0o755"  # a teammate on the machine can read artifacts
    write_json(final / "stats.json", {"rows": 1})
    assert oct((final / "stats.json").stat().st_mode & 0o777) == "0o644"
    with pytest.raises(PipelineError):
        verify_dir(final, "tokenize")  # atomic_dir alone does not seal: readers refuse it


def test_concurrent_folder_swaps_never_fail_and_one_writer_wins_whole(tmp_path):
    import threading

    from pipeline.core.fileio import atomic_dir

    final, errors = tmp_path / "model", []
    barrier = threading.Barrier(6)

    def writer(k):
        try:
            with atomic_dir(final) as tmp:
                for i in range(20):
                    (tmp / f"part{i}.txt").write_text(str(k))
                barrier.wait(timeout=30)  # all six swap at the same moment
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    contents = {(final / f"part{i}.txt").read_text() for i in range(20)}
    assert len(contents) == 1 and sorted(p.name for p in final.iterdir()) == sorted(f"part{i}.txt" for i in range(20))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
