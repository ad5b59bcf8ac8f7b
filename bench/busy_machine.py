"""Training tokens/s on a quiet machine and beside 1 and 2 competing CPU-bound processes.

Each measurement is a fresh process (the ``textpipe`` entry point's OpenMP wait policy, no
``$OMP_NUM_THREADS``) that runs the train stage's :class:`~pipeline.train.Trainer` with the shipped
defaults (or ``--set key=value`` overrides of the train block, e.g. ``--set threads=2`` for the
fixed two threads textpipe had before :mod:`pipeline.cpu_share`) for ``--steps`` optimizer steps
of one epoch, and reports its real (non-pad) training tokens/s. The competitors are
``python -c "while True: pass"`` processes this script starts before the run and kills (by pid)
after it. Loads rotate within a repeat, so the ratios ``load / quiet`` of each repeat are
measured minutes apart, and the medians over ``--repeats`` are printed with them.

    python bench/busy_machine.py --data short=artifacts/sst5k --data imdb=artifacts/imdb --repeats 3

(``short``: 5,000 rows cut from SST-2 train, see BENCHMARKS.md; any dataset's artifacts folder
with shards, vocab and vectors works.)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.procs import die_with_parent  # noqa: E402  (children end with this script, however it ends)
BUSY = "while True: pass"

CHILD = """
import json, sys
from pipeline.openmp import set_wait_policy
set_wait_policy()
from pathlib import Path
from pipeline.core.config import TrainConfig
from pipeline.train import Trainer
data, out, steps, overrides = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
cfg = TrainConfig.from_block({**TrainConfig().to_dict(), "epochs": 1, "max_steps": steps, **overrides})
trainer = Trainer(data / "shards", data / "vocab" / "vocab.tsv", out, cfg, None,
                  data / "vectors" if (data / "vectors").is_dir() else None)
run = trainer.fit()
print(json.dumps({k: run.get(k) for k in ("tokens_per_s", "threads", "threads_min", "steps_at_threads")}))
"""


def measure(data: Path, steps: int, overrides: dict, load: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["TQDM_DISABLE"] = "1"
    busy = [subprocess.Popen([sys.executable, "-c", BUSY], preexec_fn=die_with_parent) for _ in range(load)]
    try:
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(data), out, str(steps), json.dumps(overrides)],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
                                  preexec_fn=die_with_parent)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if proc.returncode:
        sys.exit(f"Error: the training run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", required=True, help="name=artifacts folder (shards, vocab[, vectors])")
    ap.add_argument("--steps", type=int, action="append", help="optimizer steps per run, one per --data (default 100)")
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2], help="competing CPU-bound processes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="train key=value (YAML value)")
    args = ap.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    datasets = [d.split("=", 1) for d in args.data]
    steps = args.steps or [100] * len(datasets)
    results: dict = {name: {load: [] for load in args.loads} for name, _ in datasets}
    for repeat in range(args.repeats):
        for (name, path), n in zip(datasets, steps):
            for load in args.loads:
                r = measure(Path(path), n, overrides, load)
                results[name][load].append(r)
                print(f"repeat {repeat + 1} {name} load {load}: {r['tokens_per_s']:,.0f} tokens/s, "
                      f"threads {r['steps_at_threads']}", file=sys.stderr, flush=True)
    summary = {}
    for name, by_load in results.items():
        quiet = [r["tokens_per_s"] for r in by_load[args.loads[0]]]
        summary[name] = {f"load_{load}": {
            "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in runs)),
            "runs": [round(r["tokens_per_s"]) for r in runs],
            f"ratio_to_load_{args.loads[0]}_median": round(statistics.median(
                r["tokens_per_s"] / q for r, q in zip(runs, quiet)), 3),
        } for load, runs in by_load.items()}
    print(json.dumps({"overrides": overrides, "steps": dict(zip((n for n, _ in datasets), steps)), **summary}, indent=2))


if __name__ == "__main__":
    main()
