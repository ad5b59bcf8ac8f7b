"""DVC's own overhead: a no-op `dvc repro`, and switching back to a dataset restored from the run-cache.

Builds a fresh git+DVC project from this repo in a temp folder, runs the
pipeline on the chosen dataset (training capped at --max-steps: the figures are
about DVC, not training), then times (median of --repeats):
- `dvc repro` with nothing changed,
- `dvc exp run` switching to a small other dataset and back, the switch back
  being restored from the run-cache without running any stage.

    python bench/dvc_overhead.py --repeats 3                                   # demo
    python bench/dvc_overhead.py --repeats 3 --dataset imdb --path ../shared/data/imdb
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.project import dvc, make_project, ran_stages  # noqa: E402


def timed(*args, cwd) -> tuple[float, str]:
    t = time.perf_counter()
    out = dvc(*args, cwd=cwd).stdout
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="demo", help="preset name to measure")
    ap.add_argument("--path", default=None, help="local folder of the dataset (source: files)")
    ap.add_argument("--max-steps", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p")
        other = Path(tmp) / "other"
        other.mkdir()
        (other / "train.csv").write_text("text,label\n" + "".join(f"good film {i},1\nbad film {i},0\n" for i in range(100)))
        source = ["files", str(Path(args.path).resolve())] if args.path else ["null", "null"]
        back = ["-S", f"dataset.name={args.dataset}", "-S", f"dataset.source={source[0]}", "-S", f"dataset.path={source[1]}"]
        quick = ["-S", "train.epochs=1", "-S", f"train.max_steps={args.max_steps}"]
        dvc("exp", "run", *back, *quick, cwd=project)
        noop = [timed("repro", cwd=project)[0] for _ in range(args.repeats)]
        switch = ["-S", "dataset.name=other", "-S", "dataset.source=files", "-S", f"dataset.path={other}"]
        dvc("exp", "run", *switch, cwd=project)
        restores = []
        for _ in range(args.repeats):
            seconds, out = timed("exp", "run", *back, cwd=project)
            assert ran_stages(out) == ["check"], out  # check runs on every repro (it fingerprints data files)
            restores.append(seconds)
            dvc("exp", "run", *switch, cwd=project)
    print(json.dumps({"dataset": args.dataset, "repeats": args.repeats, "noop_repro_s": round(statistics.median(noop), 2),
                      "switch_back_restored_s": round(statistics.median(restores), 2)}, indent=2))


if __name__ == "__main__":
    main()
