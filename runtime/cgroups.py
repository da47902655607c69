"""Per-container cgroups for CPU accounting and for killing a whole container.

Machines differ: pure cgroup v1, *hybrid* (v1 controllers plus a cgroup2
hierarchy with no controllers, as on the development machine) and pure v2.
The layout is read from ``/proc/self/mounts`` and ``/proc/self/cgroup``, never
assumed. Each container's cgroup is created in every hierarchy we use, nested
under the caller's own cgroup there, as ``ipcbench-<run>/<container>``.

CPU time comes from v1 ``cpuacct.usage`` (nanoseconds) when that controller
is mounted, else from cgroup2 ``cpu.stat`` ``usage_usec`` (available even with
no controller enabled). Killing uses cgroup2 ``cgroup.kill`` when present,
else a signal to every pid listed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

# The v1 controllers a container's cgroup is created in.
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
PREFIX = "ipcbench-"


class CgroupError(Exception):
    """A cgroup could not be created, joined or removed."""


@dataclass(frozen=True)
class Layout:
    """Where the hierarchies are mounted, and where the caller sits in each."""

    kind: str  # "v1", "hybrid" or "v2"
    v1: dict[str, Path] = field(default_factory=dict)  # controller -> caller's cgroup dir
    unified: Path | None = None  # caller's cgroup dir in the cgroup2 hierarchy
    unified_controllers: tuple[str, ...] = ()

    def describe(self) -> str:
        v1 = ",".join(sorted(self.v1)) or "none"
        v2 = ",".join(self.unified_controllers) or "no controllers"
        return f"{self.kind} (v1: {v1}; v2: {v2 if self.unified else 'absent'})"

    def hierarchy_dirs(self, *, cpuset: bool = True) -> list[Path]:
        """The distinct caller cgroup dirs a container cgroup may be created under.

        A v1 cpuset cgroup is unusable until its cpus and mems are written, so
        a container gets one only when it asks for a cpuset (``cpuset=False``
        leaves that hierarchy out); sweeps look in all of them.
        """
        controllers = (*V1_CONTROLLERS, "cpuset") if cpuset else V1_CONTROLLERS
        dirs = {self.v1[c] for c in controllers if c in self.v1}
        if self.unified:
            dirs.add(self.unified)
        return sorted(dirs)


def detect(mounts: str | None = None, self_cgroup: str | None = None) -> Layout:
    """Read the cgroup layout of this machine (or of the given file contents)."""
    mounts = mounts if mounts is not None else Path("/proc/self/mounts").read_text()
    own = self_cgroup if self_cgroup is not None else Path("/proc/self/cgroup").read_text()
    v1_mounts: dict[str, Path] = {}
    unified_mount: Path | None = None
    for line in mounts.splitlines():
        _, mountpoint, fstype, options, *_ = line.split()
        if fstype == "cgroup2":
            unified_mount = Path(mountpoint)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in V1_CONTROLLERS or opt in ("cpuset", "freezer"):
                    v1_mounts[opt] = Path(mountpoint)
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in own.splitlines():
        _, names, path = line.split(":", 2)
        rel = path.lstrip("/")
        if not names and unified_mount is not None:
            unified = unified_mount / rel
        for controller in names.split(","):
            if controller in v1_mounts:
                v1[controller] = v1_mounts[controller] / rel
    kind = "v2" if not v1 else ("hybrid" if unified is not None else "v1")
    controllers: tuple[str, ...] = ()
    if unified is not None and (unified / "cgroup.controllers").exists():
        controllers = tuple((unified / "cgroup.controllers").read_text().split())
    return Layout(kind=kind, v1=v1, unified=unified, unified_controllers=controllers)


class Cgroup:
    """One container's cgroup in every hierarchy; created on init, removed by :meth:`remove`."""

    def __init__(
        self, layout: Layout, run_id: str, name: str, *, create: bool = True, cpuset: bool = False
    ):
        self.layout = layout
        # A handle for gc (create=False) covers every hierarchy, cpuset included.
        parents = layout.hierarchy_dirs(cpuset=cpuset or not create)
        self.dirs = [d / f"{PREFIX}{run_id}" / name for d in parents]
        if not create:
            return
        try:
            for d in self.dirs:
                d.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            self.remove()
            raise CgroupError(f"cannot create cgroup {name}: {exc}") from exc

    @classmethod
    def existing(cls, layout: Layout, run_id: str, name: str) -> Cgroup:
        """A handle on a cgroup some earlier process created (for gc)."""
        return cls(layout, run_id, name, create=False)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def dir_of(self, controller: str) -> Path | None:
        """This cgroup's dir in the hierarchy holding ``controller`` (v1), else None."""
        return self._dir_of(self.layout.v1.get(controller))

    @property
    def unified_dir(self) -> Path | None:
        return self._dir_of(self.layout.unified)

    def _dir_of(self, hierarchy: Path | None) -> Path | None:
        for d in self.dirs:
            if hierarchy is not None and d.is_relative_to(hierarchy):
                return d
        return None

    def cpu_ns(self) -> int:
        """CPU time used by every process that ever ran in the container, in ns."""
        acct = self._dir_of(self.layout.v1.get("cpuacct"))
        if acct is not None:
            return int((acct / "cpuacct.usage").read_text())
        unified = self._dir_of(self.layout.unified)
        if unified is not None:
            for line in (unified / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) * 1000
        raise CgroupError("no CPU accounting available in this cgroup layout")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def kill(self, timeout: float = 5.0) -> None:
        """Kill every process in the cgroup and wait (with a deadline) until it is empty."""
        unified = self._dir_of(self.layout.unified)
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if unified is not None and (unified / "cgroup.kill").exists():
                _write_quiet(unified / "cgroup.kill", "1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(pids)} survive SIGKILL")
            time.sleep(0.002)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, remove the cgroup dirs, and the run's dir once empty. Idempotent."""
        self.kill(timeout)
        for d in self.dirs:
            _rmdir_with_deadline(d, timeout)
            with contextlib.suppress(OSError):  # not empty: other containers of the run
                d.parent.rmdir()  # the run's dir goes with its last container


def _write_quiet(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(value)


def _rmdir_with_deadline(path: Path, timeout: float) -> None:
    # A cgroup whose last process just exited can refuse rmdir (EBUSY) for a
    # moment while the kernel finishes the exit: retry until the deadline.
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {path}: {exc}") from exc
            time.sleep(0.005)
