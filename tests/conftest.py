"""Environment and shared fixtures; helper functions live in tests/helpers.py."""
import os
import sys
from pathlib import Path

import pytest

# Nothing in the tests may reach the network.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
# `dvc exp run` commits experiments: give git an identity on machines that have none.
for key, value in (("GIT_AUTHOR_NAME", "textpipe tests"), ("GIT_AUTHOR_EMAIL", "tests@textpipe.invalid"),
                   ("GIT_COMMITTER_NAME", "textpipe tests"), ("GIT_COMMITTER_EMAIL", "tests@textpipe.invalid")):
    os.environ.setdefault(key, value)
# Two xdist workers share the cores: one torch thread each (train.threads: 0 reads it, and so do
# the stages the tests start), so neither's thread team spins waiting for a descheduled thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The console scripts of this environment (textpipe, dvc) must be found by subprocesses.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

from .helpers import REPO, run_all  # noqa: E402

# Two xdist workers take whole files (`--dist loadfile`) in the order collected
# (`--no-loadscope-reorder`; xdist's own order puts files with few tests last, and the README
# walk-through, one test of five minutes, then ran alone at the end). The longest files go
# first, longest first, so the rest fill in around them (`python -m pytest --durations=0`
# shows each test's time).
# test_ray.py starts Ray inside the test worker; after the cluster test in the same worker that start
# crashed the worker (seen twice in full runs), so the cluster test, whose Ray runs in processes of its
# own, comes after it.
LONGEST_FIRST = ("test_readme.py", "test_dvc.py", "test_interrupt.py", "test_train.py", "test_ray.py",
                 "test_ray_cluster.py", "test_distributed.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demo corpus through ingest -> shard once (single worker), shared read-only by many tests."""
    root = tmp_path_factory.mktemp("demo")
    run_all(root, tokenize={"workers": 1})
    return root


@pytest.fixture
def write_params(tmp_path):
    """Write a params.yaml built from the repo's with overrides per block."""
    import yaml

    base = yaml.safe_load((REPO / "params.yaml").read_text())

    def _write(**blocks):
        params = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for block, values in blocks.items():
            params.setdefault(block, {}).update(values)
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        return path

    return _write
