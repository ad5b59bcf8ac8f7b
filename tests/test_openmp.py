"""The OpenMP wait policy textpipe sets before torch loads: when it applies, and that trained bytes
do not depend on it (it changes how threads wait, not what they compute)."""
import os
import subprocess
import sys

from pipeline import openmp

TRAIN_8_STEPS = """
import hashlib, os, sys, torch
from pathlib import Path
from torch import nn
from pipeline.model import TextClassifier
from pipeline.optim import ClassifierOptimizer, clip_grad_norm
from pipeline.sampler import LengthBucketSampler, collate
from pipeline.shards import ShardReader
root = Path(sys.argv[1])
reader = ShardReader(root / "shards", vocab_path=root / "vocab" / "vocab.tsv")
data = reader.split("train")
torch.set_num_threads(2)
torch.manual_seed(0)
model = TextClassifier(reader.manifest["vocab"]["size"], len(reader.labels))
model.embedding.sparse = True
opt = ClassifierOptimizer(model, "adam", 0.004)
for batch in LengthBucketSampler(data.lengths, data.buckets, 128, 3200, seed=0).batches()[:8]:
    ids, lengths, labels = collate(data, batch)
    loss = nn.functional.cross_entropy(model(ids, lengths), labels)
    opt.zero_grad(); loss.backward(); clip_grad_norm(opt.params, 5.0); opt.step()
opt.state_dict()  # what a resume point saves
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(os.environ.get("GOMP_SPINCOUNT"), digest, "torch._dynamo" in sys.modules)
"""


def test_wait_policy_is_set_only_before_torch_and_never_over_the_users(monkeypatch):
    for knob in openmp.USER_KNOBS:
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setitem(sys.modules, "torch", sys)  # torch loaded: libgomp has read its environment, too late
    assert openmp.set_wait_policy() is False and "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    assert openmp.set_wait_policy() is True and os.environ["GOMP_SPINCOUNT"] == "100000"
    for knob, value in (("GOMP_SPINCOUNT", "5"), ("OMP_WAIT_POLICY", "PASSIVE")):
        for k in openmp.USER_KNOBS:
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv(knob, value)
        assert openmp.set_wait_policy() is False
        assert {k: os.environ.get(k) for k in openmp.USER_KNOBS} == {
            k: (value if k == knob else None) for k in openmp.USER_KNOBS}


def test_the_textpipe_command_sets_it_unless_the_user_did():
    env = {k: v for k, v in os.environ.items() if k not in openmp.USER_KNOBS}
    code = ("import os, sys\nfrom stages.cli import main\nsys.argv = ['textpipe', '--version']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint(os.environ.get('GOMP_SPINCOUNT'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.splitlines()[-1] == "100000"
    env["GOMP_SPINCOUNT"] = "7"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.splitlines()[-1] == "7"


def test_trained_bytes_do_not_depend_on_the_wait_policy(demo):
    digests = set()
    for spins in ("0", "100000", None):
        env = {k: v for k, v in os.environ.items() if k not in openmp.USER_KNOBS}
        if spins is not None:
            env["GOMP_SPINCOUNT"] = spins
        out = subprocess.run([sys.executable, "-c", TRAIN_8_STEPS, str(demo)], capture_output=True, text=True,
                             env=env, timeout=300, check=True).stdout.split()
        assert out[0] == str(spins)
        digests.add(out[1])
        # training steps never import torch._dynamo (2-3 s of start-up): no torch.optim.Optimizer (pipeline/optim.py)
        assert out[2] == "False"
    assert len(digests) == 1
