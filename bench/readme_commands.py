"""Where the README walk-through's time goes: every README command, timed as `tests/test_readme.py` runs it.

Runs the walk-through test once (a fresh git + DVC project, small slices of ../shared/data,
every README command in order, with the test's checks) and prints the wall time of each
command it starts, then the total. The walk-through is the longest test of the suite.

    python bench/readme_commands.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]

from tests import test_readme  # noqa: E402

TIMES: list[tuple[float, str]] = []
_run = subprocess.run


def _timed(args, *rest, **kwargs):
    start = time.perf_counter()
    try:
        return _run(args, *rest, **kwargs)
    finally:
        shown = args[-1] if args[:2] == ["bash", "-c"] else " ".join(map(str, args))
        TIMES.append((time.perf_counter() - start, " ".join(shown.split("  #")[0].split())))


def main() -> None:
    subprocess.run = _timed  # the module every command of the test goes through
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        test_readme.test_every_readme_command_runs_in_order(Path(tmp))
    total = time.perf_counter() - start
    print("| seconds | command |\n|---:|---|")
    for seconds, command in TIMES:
        if seconds >= 0.05:
            print(f"| {seconds:.1f} | `{command[:110].replace('|', chr(92) + '|')}` |")
    print(f"| **{total:.1f}** | the whole walk-through |")


if __name__ == "__main__":
    main()
