import os
import shutil
import subprocess
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

REPO = Path(__file__).resolve().parent.parent
ALL_STAGES = ["ingest", "tokenize", "vocab", "vectors", "bucket", "shard", "train", "evaluate"]  # as `dvc repro` runs them
PIPELINE_EDGES = [("ingest", "tokenize"), ("tokenize", "vocab"), ("vocab", "vectors"), ("vocab", "bucket"),
                  ("bucket", "shard"), ("shard", "train"), ("vectors", "train"), ("train", "evaluate")]
SHARED = Path(os.environ.get("TEXTPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real dataset {path} not present (set TEXTPIPE_SHARED_DATA or place ../shared/data beside the repo)")
    return path


@pytest.fixture
def write_params(tmp_path):
    """Write a params.yaml built from the repo's defaults with overrides per block."""
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


def run_cli(*args, cwd=None, check=True):
    """Run the textpipe console script as a user would."""
    exe = shutil.which("textpipe") or str(Path(sys.executable).parent / "textpipe")
    proc = subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"textpipe {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


# The console scripts of this environment (textpipe, dvc) must be found by subprocesses.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore", "pipeline", "stages")


def make_project(dest: Path) -> Path:
    """A fresh git + DVC project holding this repo's pipeline, as a user's clone would."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=dest, check=True)
    return dest


def dvc(*args, cwd, check=True):
    proc = subprocess.run(["dvc", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran_stages(output: str) -> list[str]:
    """Stage names DVC says it ran (not skipped, not restored) in `dvc repro`/`exp run` output."""
    import re

    return re.findall(r"Running stage '([^']+)'", output)
