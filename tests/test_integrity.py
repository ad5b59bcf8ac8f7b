"""Every artifact is verified before use: a damaged input stops the stage that reads it with one
`Error:` line naming the file and the command that repairs it, through the console script."""
import json
import shutil

import pytest
import torch
import yaml

from pipeline.checkpoint import read_checkpoint_file
from pipeline.core.errors import PipelineError
from pipeline.core.integrity import CHECKSUMS, seal, verify_dir

from .helpers import run_cli

TINY = {"epochs": 1, "max_steps": 4, "embed_dim": 8, "hidden_size": 8, "patience": 0}


@pytest.fixture(scope="module")
def project(demo, tmp_path_factory):
    """A project folder holding the demo's artifacts and a tiny trained model."""
    root = tmp_path_factory.mktemp("integrity") / "proj"
    art = root / "artifacts" / "demo"
    for part in ("raw", "tokens", "vocab", "ids", "shards"):
        shutil.copytree(demo / part, art / part)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": TINY}))
    run_cli("train", cwd=root)
    return root


@pytest.fixture
def copy(project, tmp_path):
    dst = tmp_path / "proj"
    shutil.copytree(project, dst)
    return dst


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_manifest(path):
    manifest = json.loads(path.read_text())
    manifest["labels"] = list(reversed(manifest["labels"]))
    path.write_text(json.dumps(manifest))


def drop_test_split(path):
    manifest = json.loads(path.read_text())
    del manifest["splits"]["test"]
    path.write_text(json.dumps(manifest))


def first_shard(art):
    return art / "shards" / json.loads((art / "shards" / "manifest.json").read_text())["splits"]["train"]["shards"][0]["file"]


# (id, how to damage artifacts/demo, the stage that reads it, message, repair command)
CASES = [
    ("flipped-byte-in-tokens", lambda a: flip_byte(a / "tokens" / "train.arrow"), "vocab",
     "tokens/train.arrow does not match its checksum", "dvc repro -f tokenize"),
    ("truncated-ids", lambda a: truncate(a / "ids" / "train.arrow"), "shard",
     "ids/train.arrow has", "dvc repro -f bucket"),
    ("flipped-byte-in-shard", lambda a: flip_byte(first_shard(a)), "train",
     "does not match its checksum", "dvc repro -f shard"),
    ("truncated-shard", lambda a: truncate(first_shard(a)), "evaluate", "(truncated or edited)", "dvc repro -f shard"),
    ("missing-shard", lambda a: first_shard(a).unlink(), "train", "is missing", "dvc repro -f shard"),
    ("edited-manifest-labels", lambda a: edit_manifest(a / "shards" / "manifest.json"), "evaluate",
     "shards/manifest.json has", "dvc repro -f shard"),
    ("manifest-test-entry-removed", lambda a: drop_test_split(a / "shards" / "manifest.json"), "evaluate",
     "shards/manifest.json has", "dvc repro -f shard"),
    ("checksums-not-json", lambda a: (a / "shards" / CHECKSUMS).write_text("{not json"), "train",
     "shards/checksums.json is damaged or was edited", "dvc repro -f shard"),
    ("checksums-missing", lambda a: (a / "raw" / CHECKSUMS).unlink(), "tokenize",
     "raw/checksums.json is missing", "dvc repro -f ingest"),
    ("truncated-model", lambda a: truncate(a / "model" / "model.pt"), "evaluate",
     "model/model.pt has", "dvc repro -f train"),
    ("edited-vocabulary", lambda a: (a / "vocab" / "vocab.tsv").write_text("<pad>\t0\n<unk>\t0\nx\t9\n"), "train",
     "vocab/vocab.tsv has", "dvc repro -f vocab"),
    # a split file dropped into a sealed folder is not taken for a split: readers trust only the seal
    ("file-added-after-the-seal", lambda a: (a / "tokens" / "extra.arrow").write_bytes(b"x"), "vocab",
     "tokens/extra.arrow is not in checksums.json (added after", "dvc repro -f tokenize"),
]


@pytest.mark.parametrize("damage,command,message,repair", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_damaged_input_is_refused_in_one_line(copy, damage, command, message, repair):
    art = copy / "artifacts" / "demo"
    damage(art)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*") if "resume" not in p.parts)
    proc = run_cli(command, cwd=copy, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert message in lines[0] and f"`{repair}`" in lines[0], lines[0]
    after = sorted(p.relative_to(copy) for p in copy.rglob("*") if "resume" not in p.parts)
    assert [p for p in after if p not in before and not p.name.endswith(".lock")] == []  # nothing written


def test_vocabulary_of_another_run_is_refused(copy, tmp_path):
    art = copy / "artifacts" / "demo"
    (art / "vocab" / "vocab.tsv").write_text((art / "vocab" / "vocab.tsv").read_text() + "brandnewword\t1\n")
    seal(art / "vocab")  # a whole, valid vocabulary folder, just not the one the shards were built with
    proc = run_cli("train", cwd=copy, check=False)
    assert proc.returncode == 2
    assert "is not the one the shards were built with" in proc.stderr and proc.stderr.count("\n") == 1


def test_pickle_payload_in_model_never_runs(copy, tmp_path):
    """A model.pt whose pickle would run code: refused by torch.load(weights_only=True), even when
    its folder's checksums were rewritten to match it; the payload's marker file never appears."""
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    model = copy / "artifacts" / "demo" / "model" / "model.pt"
    torch.save({"format": "textpipe-model/1", "evil": Payload()}, model, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(PipelineError, match="is not a textpipe checkpoint"):
        read_checkpoint_file(model)
    seal(model.parent)
    verify_dir(model.parent, "train")
    for command in (["evaluate"], ["predict", "a fine film"]):
        proc = run_cli(*command, cwd=copy, check=False)
        assert proc.returncode == 2 and "is not a textpipe checkpoint" in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1
    assert not marker.exists()


def test_a_resume_point_altered_after_it_was_written_is_set_aside(demo, tmp_path, capsys):
    from pipeline.core.config import TrainConfig
    from pipeline.train import Trainer

    def trainer():
        return Trainer(demo / "shards", demo / "vocab" / "vocab.tsv", tmp_path / "model", TrainConfig.from_block(TINY),
                       resume_dir=tmp_path / "resume")

    trainer()._save_resume(1)
    path = tmp_path / "resume" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["model"]["head.bias"][0] += 1.0  # one weight changed, the file otherwise well-formed
    torch.save(state, path)
    again = trainer()
    assert again.try_resume() is False and again.start_epoch == 1
    assert "warning: resume point" in capsys.readouterr().err
    assert (tmp_path / "resume" / "last.pt.corrupt").exists() and not path.exists()
    intact = trainer()
    intact._save_resume(1)
    assert trainer().try_resume() is True  # an untouched one resumes


def test_an_exported_model_altered_after_export_is_refused_in_one_line(copy, tmp_path):
    out = tmp_path / "model.textpipe"
    run_cli("export", "--out", out, cwd=copy)
    assert run_cli("predict", "--model", out, "fine film", cwd=tmp_path).returncode == 0
    bundle = torch.load(out, weights_only=True)
    bundle["state_dict"]["head.bias"][1] += 5.0  # it would then predict one class for everything
    torch.save(bundle, out)
    proc = run_cli("predict", "--model", out, "fine film", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr == (f"Error: {out} does not match its checksum (corrupt or edited); "
                                                    "export it again with `textpipe export`\n"), proc.stderr
