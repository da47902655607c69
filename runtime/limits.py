"""Resource limits and accounting of a container's cgroup: CPU, cpuset, memory, pids.

Docker's flags map onto the files of whichever hierarchy holds the
controller: v1 (``cpu.cfs_quota_us``/``cfs_period_us``, ``cpuset.cpus`` and
``cpuset.mems``, ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes``,
``pids.max``) or v2 (``cpu.max``, ``cpuset.cpus``/``cpuset.mems``,
``memory.max`` and ``memory.swap.max``, ``pids.max``). Limits are written
before any process joins. Swap is never granted: a container with a memory
limit gets no swap on top (Docker's default would double it), so that going
over the limit ends in an OOM kill, not in a slow benchmark.

Pure cgroup v2 has one rule v1 does not: a controller can only be enabled for
children (``cgroup.subtree_control``) in a cgroup that holds no process
itself. :func:`apply` enables the controllers it needs in the caller's cgroup
and in the run's; that fails (and says so) when the harness sits in a
non-root cgroup that holds processes and does not delegate them already, as
in a systemd unit without ``Delegate=yes``. That path is checked against a
prepared fake cgroup tree only (tests/test_runtime_limits.py): this
development machine mounts every controller on v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.cgroups import Cgroup, CgroupError

PERIOD_US = 100_000  # Docker's CFS period


@dataclass(frozen=True)
class Limits:
    """Docker's resource flags: ``--cpus``, ``--cpuset-cpus``, ``--memory``, ``--pids-limit``."""

    cpus: float | None = None
    cpuset_cpus: str | None = None
    memory: int | None = None  # bytes
    pids_limit: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in vars(self).values())


@dataclass(frozen=True)
class CpuStats:
    """CPU time of a container, and how often its quota held it back."""

    usage_ns: int
    periods: int  # enforcement periods that elapsed with the quota in force (0: no quota)
    throttled_periods: int  # of those, the ones in which the quota ran out
    throttled_ns: int  # total time the container was held back

    @property
    def throttled(self) -> bool:
        return self.throttled_periods > 0


def _write(path: Path, value: object) -> None:
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc}") from exc


def _need(cgroup: Cgroup, controller: str) -> Path:
    d = cgroup.dir_of(controller)
    if d is None:
        raise CgroupError(f"no {controller} controller on this machine")
    return d


def apply(cgroup: Cgroup, limits: Limits) -> None:
    """Write ``limits`` into the container's cgroup (before any process joins it)."""
    if not limits:
        return
    if cgroup.layout.v1:
        _apply_v1(cgroup, limits)
    else:
        _apply_v2(cgroup, limits)


def _apply_v1(cgroup: Cgroup, limits: Limits) -> None:
    if limits.cpus is not None:
        d = _need(cgroup, "cpu")
        _write(d / "cpu.cfs_period_us", PERIOD_US)
        _write(d / "cpu.cfs_quota_us", quota_us(limits.cpus))
    if limits.cpuset_cpus is not None:
        d = _need(cgroup, "cpuset")
        # A new v1 cpuset cgroup starts empty: the run's dir inherits the caller's.
        for level in (d.parent, d):
            _write(level / "cpuset.mems", (level.parent / "cpuset.mems").read_text().strip())
        _write(d.parent / "cpuset.cpus", (d.parent.parent / "cpuset.cpus").read_text().strip())
        _write(d / "cpuset.cpus", limits.cpuset_cpus)
    if limits.memory is not None:
        d = _need(cgroup, "memory")
        _write(d / "memory.limit_in_bytes", limits.memory)
        if (d / "memory.memsw.limit_in_bytes").exists():  # only with swap accounting
            _write(d / "memory.memsw.limit_in_bytes", limits.memory)
    if limits.pids_limit is not None:
        _write(_need(cgroup, "pids") / "pids.max", limits.pids_limit)


def _apply_v2(cgroup: Cgroup, limits: Limits) -> None:
    d = cgroup.unified_dir
    if d is None:
        raise CgroupError("no cgroup hierarchy to apply limits in")
    wanted = [
        name
        for name, value in (
            ("cpu", limits.cpus),
            ("cpuset", limits.cpuset_cpus),
            ("memory", limits.memory),
            ("pids", limits.pids_limit),
        )
        if value is not None
    ]
    for level in (d.parent.parent, d.parent):  # the caller's cgroup, then the run's
        _enable(level, wanted)
    if limits.cpus is not None:
        _write(d / "cpu.max", f"{quota_us(limits.cpus)} {PERIOD_US}")
    if limits.cpuset_cpus is not None:
        _write(d / "cpuset.cpus", limits.cpuset_cpus)
    if limits.memory is not None:
        _write(d / "memory.max", limits.memory)
        if (d / "memory.swap.max").exists():
            _write(d / "memory.swap.max", 0)
    if limits.pids_limit is not None:
        _write(d / "pids.max", limits.pids_limit)


def _enable(level: Path, controllers: list[str]) -> None:
    have = (level / "cgroup.subtree_control").read_text().split()
    missing = [c for c in controllers if c not in have]
    if not missing:
        return
    available = (level / "cgroup.controllers").read_text().split()
    if any(c not in available for c in missing):
        raise CgroupError(f"{level} does not offer the {' '.join(missing)} controllers")
    try:
        (level / "cgroup.subtree_control").write_text(" ".join("+" + c for c in missing))
    except OSError as exc:  # EBUSY: processes in a non-root cgroup (the "no internal process" rule)
        raise CgroupError(
            f"cannot enable {' '.join(missing)} below {level} ({exc.strerror}): run the harness "
            "in a leaf cgroup whose parent delegates them (systemd: Delegate=yes)"
        ) from exc


def quota_us(cpus: float) -> int:
    if cpus <= 0:
        raise ValueError(f"cpus must be positive, not {cpus}")
    return max(1000, round(cpus * PERIOD_US))  # the kernel's minimum quota is 1 ms


def _keyed(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in path.read_text().splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}


def oom_killed(cgroup: Cgroup) -> bool:
    """True when the kernel's OOM killer ended a process of this cgroup."""
    d = cgroup.dir_of("memory")
    if d is not None:  # v1: oom_kill counts kills (4.13+); under_oom while it is happening
        control = _keyed(d / "memory.oom_control")
        return control.get("oom_kill", 0) > 0 or control.get("under_oom", 0) > 0
    d = cgroup.unified_dir
    if d is not None and (d / "memory.events").exists():
        return _keyed(d / "memory.events").get("oom_kill", 0) > 0
    return False


def cpu_stats(cgroup: Cgroup) -> CpuStats:
    """CPU time used, and the throttling counters where a quota applies."""
    usage = cgroup.cpu_ns()
    d = cgroup.dir_of("cpu")
    if d is not None:  # v1: throttled_time is in ns
        stat = _keyed(d / "cpu.stat")
        return CpuStats(
            usage,
            stat.get("nr_periods", 0),
            stat.get("nr_throttled", 0),
            stat.get("throttled_time", 0),
        )
    d = cgroup.unified_dir
    stat = _keyed(d / "cpu.stat") if d is not None else {}
    return CpuStats(
        usage,
        stat.get("nr_periods", 0),
        stat.get("nr_throttled", 0),
        stat.get("throttled_usec", 0) * 1000,
    )
