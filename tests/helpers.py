"""Helpers the tests share (fixtures stay in conftest.py)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import layout
from pipeline.core.registry import STAGE_NAMES, edges, stage
from tools.project import REPO, dvc, make_project, ran_stages  # noqa: F401  (shared with bench/)

SHARED = Path(os.environ.get("TEXTPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
ALL_STAGES = list(STAGE_NAMES)  # as `dvc repro` runs them
PIPELINE_EDGES = edges()
DATASET_TEMPLATE = "${dataset.name}"


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real dataset {path} not present (set TEXTPIPE_SHARED_DATA or place ../shared/data beside the repo)")
    return path


def needs_native_bf16():
    """Skip marker for tests of ``train.precision: bf16``, which the stage refuses on a CPU without native bfloat16."""
    from pipeline.model import native_bf16_cpu

    return pytest.mark.skipif(not native_bf16_cpu(), reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
                              "which train.precision: bf16 needs")


def run_cli(*args, cwd=None, check=True, input=None):
    """Run the textpipe console script as a user would."""
    exe = shutil.which("textpipe") or str(Path(sys.executable).parent / "textpipe")
    proc = subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"textpipe {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


# ------------------------------------------------------------------ what dvc.yaml must say


def _imports(path: Path, package: str) -> set[str]:
    """Modules of `pipeline`/`stages` that ``path`` imports anywhere (lazy imports in functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import x
                base = package
                names = [node.module] if node.module else [a.name for a in node.names]
                found |= {f"{base}.{n}" for n in names}
            elif node.module and node.module.split(".")[0] in ("pipeline", "stages"):
                mod = node.module
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}  # `from pipeline import x`
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in ("pipeline", "stages")}
    return {m for m in found if (REPO / (m.replace(".", "/") + ".py")).exists()}


def code_closure(module: str) -> list[str]:
    """Source files of ``module`` and every project module it imports, transitively (package
    ``__init__`` files hold no code and are left out)."""
    seen, todo = set(), [module]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(_imports(REPO / (mod.replace(".", "/") + ".py"), mod.rsplit(".", 1)[0]))
    return sorted(m.replace(".", "/") + ".py" for m in seen)


CORE = "pipeline/core"  # every stage imports all of it: one directory dep in dvc.yaml (pipeline/core/__init__.py)


def code_deps(module: str) -> list[str]:
    """``module``'s code closure as dvc.yaml lists it: :data:`CORE` once for its files, the rest file by file."""
    files = code_closure(module)
    rest = [f for f in files if not f.startswith(CORE + "/")]
    return sorted(rest + [CORE]) if len(rest) < len(files) else rest


def expected_dvc_stage(name: str) -> dict:
    """The dvc.yaml entry stage ``name`` must have, from the registry and the code."""
    s = stage(name)
    entry: dict = {"cmd": f"textpipe {name}"}
    if s.always_changed:
        entry["always_changed"] = True
    entry["deps"] = [str(layout.stage_dir(DATASET_TEMPLATE, up)) for up in s.reads]
    entry["deps"] += code_deps(s.module) + list(s.data)
    entry["params"] = list(s.blocks)
    entry["outs"] = [str(layout.stage_dir(DATASET_TEMPLATE, name))]
    if s.metrics:
        entry["metrics"] = [str(layout.metrics_file(m)) for m in s.metrics]
    return entry


# ------------------------------------------------------------------ running the library stages


def run_all(root: Path, dataset=None, tokenize=None, vocab=None, bucket=None, shard=None, max_rows=0) -> dict:
    """ingest -> tokenize -> vocab -> bucket -> shard into ``root`` with block overrides; the manifest."""
    from pipeline.buckets import bucket_stage
    from pipeline.core.config import BucketConfig, DatasetConfig, IngestConfig, ShardConfig, TokenizeConfig, VocabConfig
    from pipeline.ingest import ingest
    from pipeline.shards import shard_stage
    from pipeline.tokenize import tokenize_dataset
    from pipeline.vocab import vocab_stage

    ingest(DatasetConfig.from_block(dataset).resolve(), root / "raw", IngestConfig(max_rows=max_rows))
    tokenize_dataset(root / "raw", root / "tokens", TokenizeConfig.from_block(tokenize))
    vocab_stage(root / "tokens", root / "vocab", VocabConfig.from_block(vocab))
    bucket_stage(root / "tokens", root / "vocab" / "vocab.tsv", root / "ids", BucketConfig.from_block(bucket))
    return shard_stage(root / "ids", root / "vocab" / "vocab.tsv", root / "shards", ShardConfig.from_block(shard))


# ------------------------------------------------------------------ small training projects

# min_batches 0: the demo's batches stay 32 rows (the row cap a small split gets has its own tests)
FAST_TRAIN = {"epochs": 2, "embed_dim": 32, "hidden_size": 32, "lr": 0.005, "patience": 0, "batch_size": 32,
              "min_batches": 0, "seed": 7}


def train_project(root: Path, demo: Path, train: dict) -> Path:
    """A folder laid out as a project for `textpipe train`: params.yaml with ``train`` as its train
    block, and the demo's shards and vocabulary."""
    import yaml

    for part in ("shards", "vocab"):
        shutil.copytree(demo / part, root / "artifacts" / "demo" / part)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": train}))
    return root
