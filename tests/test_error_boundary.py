"""One error boundary (stages/cli.py, main): what the machine or a user's file can cause is one `Error:` line,
exit 2, nothing left behind; a bug is its traceback plus one line saying so."""
import errno
import os

import pytest

from stages.cli import main

from .helpers import run_cli

FAILURES = [(errno.ENOSPC, "No space left on device", "free some disk space"),
            (errno.EROFS, "Read-only file system", "read-only"),
            (errno.EACCES, "Permission denied", "make it readable/writable"),
            (errno.ENOTDIR, "Not a directory", "a part of that path is a file"),
            (errno.EMLINK, "Too many links", "too many links"),
            (errno.EIO, "Input/output error", "check that path and the disk")]


def run_main(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(args)
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("code,strerror,hint", FAILURES, ids=[errno.errorcode[f[0]] for f in FAILURES])
def test_an_os_error_while_writing_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, write_params,
                                                                 code, strerror, hint):
    params = write_params(ingest={"max_rows": 50})
    monkeypatch.chdir(tmp_path)
    real_replace = os.replace

    def failing_replace(src, dst, *a, **k):
        if "artifacts" in str(dst):
            raise OSError(code, os.strerror(code), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing_replace)
    status, err = run_main(["ingest", "--params", str(params)], capsys)
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"Error: {strerror}: '") and hint in err, err
    left = [p for p in (tmp_path / "artifacts").rglob("*")] if (tmp_path / "artifacts").exists() else []
    assert not [p for p in left if p.is_file() and p.suffix != ".lock"], left


STAGE_INPUTS = [("tokenize", ["raw"]), ("vocab", ["tokens"]), ("vectors", ["tokens", "vocab"]),
                ("bucket", ["tokens", "vocab"]), ("shard", ["ids", "vocab"]), ("train", ["shards", "vocab"]),
                ("evaluate", ["raw", "shards", "vocab", "model"])]


@pytest.mark.parametrize("stage,inputs", STAGE_INPUTS, ids=[s for s, _ in STAGE_INPUTS])
def test_a_full_disk_is_one_line_in_every_stage(demo, tmp_path, monkeypatch, capsys, write_params, stage, inputs):
    import shutil

    from .helpers import FAST_TRAIN

    params = write_params(tokenize={"workers": 1}, vectors={"epochs": 1, "dim": 32},
                          train={**FAST_TRAIN, "epochs": 1, "max_steps": 3})
    if "model" in inputs:  # a model for evaluate, trained here on the demo's shards
        from pipeline.core.config import TrainConfig
        from pipeline.train import Trainer

        Trainer(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "artifacts" / "demo" / "model",
                TrainConfig.from_block({**FAST_TRAIN, "epochs": 1, "max_steps": 3})).fit()
    for part in (p for p in inputs if p != "model"):
        shutil.copytree(demo / part, tmp_path / "artifacts" / "demo" / part)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    real_replace = os.replace

    def full_disk(src, dst, *a, **k):
        if "artifacts" in str(dst) and not str(dst).endswith(".lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full_disk)
    status, err = run_main([stage, "--params", str(params)], capsys)
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]  # progress lines may come before
    assert status == 2 and len(errors) == 1 and err.splitlines()[-1] == errors[0] and "Traceback" not in err, err
    assert errors[0].startswith("Error: No space left on device: '"), err
    demo_dir = tmp_path / "artifacts" / "demo"
    files = [p for p in demo_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    left = {p.relative_to(demo_dir).parts[0] for p in files}
    assert left == set(inputs)  # no file written beside the inputs (a lock file names the writer)


@pytest.mark.parametrize("raised,expected", [
    (MemoryError(), "Error: out of memory; lower the sizes in params.yaml"),
    (__import__("pyarrow").ArrowInvalid("bad"), "Error: could not read or write an Arrow/Parquet file: bad"),
])
def test_memory_and_arrow_failures_are_one_line(tmp_path, monkeypatch, capsys, write_params, raised, expected):
    params = write_params()
    monkeypatch.chdir(tmp_path)
    import pipeline.ingest

    def fail(*a, **k):
        raise raised

    monkeypatch.setattr(pipeline.ingest, "ingest", fail)
    status, err = run_main(["ingest", "--params", str(params)], capsys)
    assert status == 2 and err.count("\n") == 1 and err.startswith(expected), err


def test_a_bug_shows_its_traceback_and_says_it_is_a_bug(tmp_path, monkeypatch, capsys, write_params):
    params = write_params()
    monkeypatch.chdir(tmp_path)
    import pipeline.ingest

    def broken(*a, **k):
        return None.rows  # an AttributeError in textpipe's own code

    monkeypatch.setattr(pipeline.ingest, "ingest", broken)
    status, err = run_main(["ingest", "--params", str(params)], capsys)
    assert status == 1 and "Traceback" in err and "AttributeError" in err
    assert err.splitlines()[-1].startswith("textpipe ingest: this is a bug in textpipe")


def test_artifacts_being_a_file_is_one_line_through_the_console_script(tmp_path, write_params):
    params = write_params()
    (tmp_path / "artifacts").write_text("not a folder")
    proc = run_cli("ingest", "--params", params, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert "artifacts" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "artifacts").read_text() == "not a folder"


def test_a_lost_ray_node_is_one_line_but_a_tasks_own_error_is_not_hidden():
    from stages.cli import expected_failure

    node_died = type("ActorDiedError", (Exception,), {"__module__": "ray.exceptions"})
    line = expected_failure(node_died("The actor died unexpectedly\nmore detail"))
    assert line == ("Ray failed (ActorDiedError: The actor died unexpectedly); a node may have been lost or the "
                    "cluster may be short of memory: check it (`ray status`), then rerun")
    task_error = type("RayTaskError", (Exception,), {"__module__": "ray.exceptions"})
    assert expected_failure(task_error("AttributeError in _Tokenize")) is None  # a bug in the task: its traceback
