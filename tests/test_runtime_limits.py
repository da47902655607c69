"""Limits hold in real cgroups: memory (OOM reported), pids (a fork bomb stops), CPU quota, cpuset.

Every hog is bounded twice: by the limit under test and by its own count or
a timeout, so a broken limit fails the test instead of the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime import limits
from runtime.cgroups import Cgroup, CgroupError, Layout
from runtime.container import ContainerSpec
from runtime.limits import Limits
from runtime.local import LocalRuntime

MIB = 1024 * 1024


def run(rt: LocalRuntime, name: str, code: str, timeout: float = 30, **kw: object):
    spec = ContainerSpec(name=name, command=(sys.executable, "-c", code), stdout_pipe=True, **kw)  # type: ignore[arg-type]
    c = rt.container(spec)
    c.start()
    assert c.stdout is not None
    out = c.stdout.read().decode()
    return c, c.wait(timeout), out


@pytest.mark.needs_root
def test_going_over_memory_ends_the_container_as_oom(rt: LocalRuntime) -> None:
    hog = "chunks = []\nfor _ in range(512):\n    chunks.append(bytearray(1 << 20))\n"
    hog += "print('survived')"
    with rt.container(ContainerSpec(name="hog", command=(sys.executable, "-c", hog),
                                    stdout_pipe=True, memory=64 * MIB)) as c:  # fmt: skip
        c.start()
        assert c.stdout is not None
        out = c.stdout.read().decode()
        assert c.wait(30) == 137, out + c.logs()
        assert c.oom_killed()
    assert "survived" not in out
    assert c.oom_killed(), "still known once the cgroup is gone"


@pytest.mark.needs_root
def test_within_the_limit_is_no_oom(rt: LocalRuntime) -> None:
    code = "x = bytearray(8 << 20); print('ok')"
    c, status, out = run(rt, "small", code, memory=256 * MIB)
    with c:
        assert status == 0 and out.strip() == "ok"
        assert not c.oom_killed()


@pytest.mark.needs_root
def test_a_fork_bomb_is_stopped_by_the_pids_limit(rt: LocalRuntime) -> None:
    # At most 200 forks, each child sleeping: the pids limit must stop it far earlier.
    bomb = (
        "import os, time\nn = 0\n"
        "for _ in range(200):\n"
        "    try:\n        pid = os.fork()\n"
        "    except BlockingIOError:\n        print('EAGAIN', n); break\n"
        "    if pid == 0:\n        time.sleep(30); os._exit(0)\n"
        "    n += 1\n"
        "else:\n    print('unbounded', n)\n"
    )
    c, status, out = run(rt, "bomb", bomb, pids_limit=16)
    with c:
        assert status == 0, c.logs()
        word, count = out.split()
        assert word == "EAGAIN"
        # pid 1 and the workload count too; the shim sits in the cgroup as well.
        assert 10 <= int(count) < 16


@pytest.mark.needs_root
def test_cpu_quota_throttles_and_is_counted(rt: LocalRuntime) -> None:
    spin = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"
    c, status, _ = run(rt, "capped", spin, cpus=0.2)
    with c:
        stats = c.cpu_stats()
        assert status == 0
        assert stats.throttled and stats.throttled_periods >= 3
        assert stats.throttled_ns > 200_000_000, "held back most of the second"
        assert stats.usage_ns < 500_000_000, "0.2 CPU for ~1 s (plus start-up)"
    c, status, _ = run(rt, "free", "pass")
    with c:
        assert c.cpu_stats().periods == 0 and not c.cpu_stats().throttled


@pytest.mark.needs_root
def test_cpuset_pins_the_container(rt: LocalRuntime) -> None:
    c, status, out = run(rt, "pinned", "import os; print(sorted(os.sched_getaffinity(0)))",
                         cpuset_cpus="0")  # fmt: skip
    with c:
        assert status == 0 and out.strip() == "[0]"
        assert c.cgroup is not None
        cpuset = c.cgroup.dir_of("cpuset")
        assert cpuset is not None and (cpuset / "cpuset.cpus").read_text().strip() == "0"


@pytest.mark.needs_root
def test_limits_leave_no_cpuset_cgroup_behind(rt: LocalRuntime) -> None:
    c, status, _ = run(rt, "pinned2", "pass", cpuset_cpus="0")
    assert c.cgroup is not None
    dirs = list(c.cgroup.dirs)
    c.remove()
    assert status == 0 and not any(d.exists() or d.parent.exists() for d in dirs)


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Layout:
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "cgroup.controllers").write_text(controllers + "\n")
    (caller / "cgroup.subtree_control").write_text("\n")
    return Layout(kind="v2", unified=caller, unified_controllers=tuple(controllers.split()))


def test_pure_v2_limits_on_a_fake_tree(tmp_path: Path) -> None:
    layout = fake_v2(tmp_path)
    cg = Cgroup(layout, "run1", "c1", cpuset=True)
    run_dir = tmp_path / "caller" / "ipcbench-run1"
    (run_dir / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (run_dir / "cgroup.subtree_control").write_text("\n")
    (run_dir / "c1" / "memory.swap.max").write_text("max\n")
    limits.apply(cg, Limits(cpus=1.5, cpuset_cpus="0-1", memory=64 * MIB, pids_limit=50))
    d = run_dir / "c1"
    assert (d / "cpu.max").read_text() == "150000 100000\n"
    assert (d / "cpuset.cpus").read_text() == "0-1\n"
    assert (d / "memory.max").read_text() == f"{64 * MIB}\n"
    assert (d / "memory.swap.max").read_text() == "0\n"
    assert (d / "pids.max").read_text() == "50\n"
    for level in (tmp_path / "caller", run_dir):
        assert (level / "cgroup.subtree_control").read_text() == "+cpu +cpuset +memory +pids"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert limits.oom_killed(cg)
    (d / "cpu.stat").write_text(
        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
        "nr_periods 10\nnr_throttled 4\nthrottled_usec 1200\n"
    )
    assert limits.cpu_stats(cg) == limits.CpuStats(2_500_000, 10, 4, 1_200_000)


def test_pure_v2_without_the_controller_says_so(tmp_path: Path) -> None:
    layout = fake_v2(tmp_path, controllers="cpu pids")
    cg = Cgroup(layout, "run2", "c1")
    with pytest.raises(CgroupError, match="memory"):
        limits.apply(cg, Limits(memory=MIB))


def test_quota_rounding() -> None:
    assert limits.quota_us(0.5) == 50_000 and limits.quota_us(0.001) == 1000
    with pytest.raises(ValueError):
        limits.quota_us(0)


def test_no_limits_touch_nothing(tmp_path: Path) -> None:
    layout = fake_v2(tmp_path)
    cg = Cgroup(layout, "run3", "c1")
    limits.apply(cg, Limits())
    assert (tmp_path / "caller" / "cgroup.subtree_control").read_text() == "\n"
    assert not (tmp_path / "caller" / "ipcbench-run3" / "c1" / "cpu.max").exists()
