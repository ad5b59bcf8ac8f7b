"""The thread count follows the machine's free cores (pipeline/cpu_share.py): the decision, not timings."""
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import cpu_share
from pipeline.cpu_share import ThreadGovernor, busy_seconds, cgroup_quota, pick_threads


@given(usable=st.integers(1, 256), others=st.floats(-1, 300, allow_nan=False))
def test_threads_fill_the_free_cores_and_never_fewer_than_one(usable, others):
    k = pick_threads(usable, others)
    assert 1 <= k <= usable
    assert k == usable or usable - others + cpu_share.HEADROOM < k + 1  # no free core left unused
    assert k == 1 or k <= usable - others + cpu_share.HEADROOM  # no thread beyond the free cores
    assert pick_threads(usable, others + 1) <= k  # more work elsewhere: never more threads


def test_threads_on_two_cores():
    # quiet (daemons, a shell); one CPU-bound process sharing with our two threads (~2/3 of a core);
    # the same process beside our one thread (a whole core); two processes
    assert [pick_threads(2, x) for x in (0.0, 0.2, 0.67, 1.0, 1.33, 2.0)] == [2, 2, 1, 1, 1, 1]
    assert [pick_threads(8, x) for x in (0.1, 1.0, 2.6, 7.5)] == [8, 7, 5, 1]


class FakeMachine(cpu_share.MachineProbe):
    """A machine whose other programs use ``others`` cores while this process uses ``mine``."""

    def __init__(self, others: float, runnable: int = 0):
        self.cpus, self.others, self.runnable = {0, 1}, others, runnable
        self.now = self.total_busy = self.mine = 0.0

    def advance(self, seconds: float, threads: int) -> None:
        self.now += seconds
        self.mine += seconds * threads
        self.total_busy += seconds * (self.others + threads)

    def busy(self) -> float:
        return self.total_busy

    def own(self) -> float:
        return self.mine

    def runnable_others(self) -> int:
        return self.runnable


def run(governor: ThreadGovernor, machine: FakeMachine, seconds: float, step: float = 0.25) -> list[int]:
    seen = []
    for _ in range(int(seconds / step)):
        machine.advance(step, governor.threads)
        seen.append(governor.tick())
    return seen


def test_the_count_drops_when_another_program_takes_a_core_and_comes_back_when_it_leaves():
    machine, calls = FakeMachine(others=0.0), []
    gov = ThreadGovernor(2, None, calls.append, machine, clock=lambda: machine.now)
    assert gov.adaptive and calls == [2]
    assert set(run(gov, machine, 3)) == {2}
    machine.others = 0.67  # a CPU-bound neighbour starts: it gets ~2/3 of a core beside our two threads
    assert run(gov, machine, 3)[-1] == 1 and calls[-1] == 1
    machine.others = 1.0  # beside our one thread it gets a whole core: we stay at one
    assert set(run(gov, machine, 5)) == {1}
    machine.others = 0.05  # it ends
    assert run(gov, machine, 3)[-1] == 2 and calls == [2, 1, 2]
    summary = gov.summary()
    assert (summary["threads_mode"], summary["threads"], summary["threads_min"], summary["thread_changes"]) == \
        ("adaptive", 2, 1, 2)
    assert sum(summary["steps_at_threads"].values()) == 56


def test_the_first_count_comes_from_the_runnable_tasks_of_other_processes():
    machine, calls = FakeMachine(others=1.0, runnable=1), []
    ThreadGovernor(2, None, calls.append, machine, clock=lambda: machine.now)
    machine.runnable = 0
    ThreadGovernor(2, None, calls.append, machine, clock=lambda: machine.now)
    assert calls == [1, 2]


def test_a_fixed_count_wins_and_nothing_adapts(monkeypatch):
    machine, calls = FakeMachine(others=2.0, runnable=2), []
    gov = ThreadGovernor(2, 2, calls.append, machine, clock=lambda: machine.now)
    assert not gov.adaptive and set(run(gov, machine, 3)) == {2} and calls == [2]
    assert gov.summary()["threads_mode"] == "fixed"
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a user's or torchrun's share
        assert ThreadGovernor.start(0).fixed == 1
        assert ThreadGovernor.start(3).fixed == 3 and torch.get_num_threads() == 3  # train.threads wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        gov = ThreadGovernor.start(0)
        assert gov.fixed is None and gov.adaptive == os.path.exists("/proc/stat")
        assert 1 <= gov.threads <= cpu_share.usable_cores()
    finally:
        torch.set_num_threads(before)


def test_cgroup_quota_v2_and_v1(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_share.Path, "read_text", _no_proc_self_cgroup(cpu_share.Path.read_text))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(tmp_path) is None


def _no_proc_self_cgroup(read_text):
    def read(self, *a, **k):
        if str(self) == "/proc/self/cgroup":
            raise OSError("not here")
        return read_text(self, *a, **k)
    return read


def test_busy_seconds_counts_the_usable_cpus_work_fields_only():
    tick = os.sysconf("SC_CLK_TCK")
    stat = ("cpu  900 0 900 900 9 0 0 0 0 0\n"
            "cpu0 100 2 30 5000 7 1 1 4 0 0\n"  # user nice system idle iowait irq softirq steal
            "cpu1 200 0 0 9000 0 0 0 0 0 0\n"
            "cpu2 999 0 0 0 0 0 0 0 0 0\nprocs_running 3\n")
    assert busy_seconds({0, 1}, stat) == pytest.approx((100 + 2 + 30 + 1 + 1 + 4 + 200) / tick)
    assert busy_seconds({2}, stat) == pytest.approx(999 / tick)
