"""dvc.yaml agrees with the stage registry and with the code (fast; no DVC run)."""
import yaml

from pipeline.core import layout
from pipeline.core.registry import STAGES, TOOLS, stage

from .helpers import ALL_STAGES, CORE, REPO, code_closure, expected_dvc_stage


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_lists_the_registry_stages_in_order():
    assert list(dvc_stages()) == ALL_STAGES


def test_each_stage_entry_agrees_with_registry_and_imports():
    for name, entry in dvc_stages().items():
        want = expected_dvc_stage(name)
        assert entry["cmd"] == want["cmd"], f"{name}: cmd must be the bare `{want['cmd']}` (no param reaches a shell)"
        deps = entry.get("deps", [])
        assert len(deps) == len(set(deps)), f"{name}: duplicate deps"
        missing, extra = set(want["deps"]) - set(deps), set(deps) - set(want["deps"])
        assert not missing and not extra, f"{name}: deps missing {sorted(missing)}, not read {sorted(extra)}"
        assert entry.get("params") == want["params"], name
        assert entry.get("outs") == want["outs"], name
        assert entry.get("metrics", []) == want.get("metrics", []), name
        assert entry.get("always_changed", False) == want.get("always_changed", False), name
        plots = [next(iter(p)) if isinstance(p, dict) else p for p in entry.get("plots", [])]
        assert plots == [str(layout.plots_file(p)) for p in stage(name).plots], name


def test_every_stage_imports_every_core_module():
    """pipeline/core is one dep of every stage: editing any of its modules reruns every stage, which is
    right only while every stage imports every one of them (else the module belongs outside core)."""
    core = {f"{CORE}/{p.name}" for p in (REPO / CORE).glob("*.py") if p.name != "__init__.py"}
    assert len(core) == 9
    entries = dvc_stages()
    for s in STAGES:
        missing = core - set(code_closure(s.module))
        assert not missing, (s.name, sorted(missing))
        deps = entries[s.name]["deps"]
        assert CORE in deps and not any(d.startswith(CORE + "/") for d in deps), s.name


def test_code_closure_follows_lazy_and_transitive_imports():
    bucket = code_closure("stages.bucket")
    assert "pipeline/vocab.py" in bucket and "pipeline/buckets.py" in bucket and "stages/common.py" in bucket
    evaluate = code_closure("stages.evaluate")
    assert "pipeline/train.py" not in evaluate and "pipeline/tokenize.py" not in evaluate
    assert {"pipeline/model.py", "pipeline/inference.py", "pipeline/shards.py", "pipeline/report.py"} <= set(evaluate)
    assert "pipeline/sampler.py" not in evaluate  # it reads the shards in length order itself
    assert "pipeline/evaluate.py" not in code_closure("stages.train") and "pipeline/report.py" not in code_closure("stages.train")
    assert "pipeline/checkpoint.py" in code_closure("stages.check")  # a lazy import inside a function counts


def test_cli_commands_come_from_the_registry():
    from stages.cli import COMMANDS

    assert list(COMMANDS) == ALL_STAGES + list(TOOLS)
    for s in STAGES:
        assert (REPO / (s.module.replace(".", "/") + ".py")).exists(), s.name
