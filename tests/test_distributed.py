"""Training with torchrun / DDP: each rank's share of batches, a 2-process run, and resuming one.

The multi-process tests run 2 CPU processes (gloo over loopback), each started and stopped
by the test with a timeout.
"""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from pipeline.distributed import rank_batches
from pipeline.core.errors import PipelineError
from pipeline.sampler import LengthBucketSampler
from pipeline.shards import ShardReader

from .helpers import FAST_TRAIN, train_project

TIMEOUT = 300


@pytest.mark.parametrize("size", [2, 3, 4])
def test_every_row_once_over_all_ranks_and_equal_steps(demo, size):
    data = ShardReader(demo / "shards").split("train")
    sampler = LengthBucketSampler(data.lengths, data.buckets, batch_size=16, seed=3)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        shares = [rank_batches(batches, r, size) for r in range(size)]
        assert len({len(s) for s in shares}) == 1, "every rank takes the same number of steps"
        rows = sorted(i for share in shares for batch in share for i in batch)
        assert rows == list(range(len(data))), "every row exactly once per epoch"
        again = [rank_batches(sampler.batches(), r, size) for r in range(size)]
        assert [[b.tolist() for b in share] for share in again] == [[b.tolist() for b in share] for share in shares], \
            "same seed and epoch: the same global order on every rank"


def test_uneven_batches_are_split_not_dropped():
    batches = [[0, 1, 2, 3], [4, 5], [6, 7, 8]]
    assert rank_batches(batches, 0, 2) == [[0, 1], [4, 5]] and rank_batches(batches, 1, 2) == [[2, 3], [6, 7, 8]]
    with pytest.raises(PipelineError, match="lower train.nproc"):
        rank_batches([[0], [1], [2]], 0, 2)


def _train(project, timeout=TIMEOUT):
    proc = subprocess.run(["textpipe", "train"], cwd=project, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_two_processes_train_like_one(demo, tmp_path):
    train = {**FAST_TRAIN, "epochs": 3, "hidden_size": 32}
    one = train_project(tmp_path / "one", demo, train)
    two = train_project(tmp_path / "two", demo, {**train, "nproc": 2})
    run_one = json.loads(_train(one).stdout)
    proc = _train(two)
    run_two = json.loads(proc.stdout)  # rank 0 alone prints the summary
    assert (run_one["processes"], run_two["processes"]) == (1, 2)
    assert abs(run_one["val_acc"] - run_two["val_acc"]) <= 0.05, (run_one, run_two)
    assert run_two["val_acc"] > 0.8
    ckpt = torch.load(two / "artifacts/demo/model/model.pt", weights_only=True)
    assert ckpt["config"]["nproc"] == 2 and ckpt["labels"] == ["neg", "pos"]
    history = (two / "artifacts/demo/model/history.csv").read_text().splitlines()
    assert len(history) == 1 + 3, "one header and one row per epoch, written once (rank 0)"
    assert not (two / "artifacts/demo/resume/last.pt").exists()


@pytest.mark.slow
def test_killed_two_process_run_resumes(demo, tmp_path):
    train = {**FAST_TRAIN, "epochs": 4, "hidden_size": 32, "batch_size": 16, "nproc": 2}
    project = train_project(tmp_path / "p", demo, train)
    resume = project / "artifacts/demo/resume/last.pt"
    proc = subprocess.Popen(["textpipe", "train"], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher, torchrun and both ranks
        proc.wait(timeout=30)
    assert resume.exists() and not (project / "artifacts/demo/model/model.pt").exists()
    again = _train(project)
    assert "resuming from epoch 2 step 0" in again.stderr
    summary = json.loads(again.stdout)
    assert summary["resumed"] is True and summary["processes"] == 2
    history = (project / "artifacts/demo/model/history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4"]
    assert np.isfinite(summary["val_loss"]) and not resume.exists()
