"""``ipcbench doctor``: each prerequisite with a one-line verdict."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
from collections.abc import Callable

Check = tuple[bool, str, str]


def _root() -> Check:
    ok = os.geteuid() == 0
    return ok, "root", "running as root" if ok else "not root: run with sudo"


def _kernel() -> Check:
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    ok = (major, minor) >= (5, 12)
    return ok, "kernel", f"{platform.release()} ({'has' if ok else 'lacks'} mount_setattr, 5.12+)"


def _namespaces() -> Check:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False, "namespaces", "util-linux 'unshare' not found"
    proc = subprocess.run(
        [unshare, "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "true"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    ok = proc.returncode == 0
    return (
        ok,
        "namespaces",
        (
            "pid, mount, uts, ipc, net can be created"
            if ok
            else proc.stderr.strip().splitlines()[-1]
        ),
    )


def _cgroups() -> Check:
    from runtime import cgroups

    try:
        layout = cgroups.detect()
    except (OSError, ValueError) as exc:
        return False, "cgroups", f"cannot read the cgroup layout: {exc}"
    has_cpu = "cpuacct" in layout.v1 or layout.unified is not None
    writable = all(os.access(d, os.W_OK) for d in layout.hierarchy_dirs())
    ok = has_cpu and writable
    return ok, "cgroups", layout.describe() + ("" if writable else "; not writable")


def _pyroute2() -> Check:
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return False, "pyroute2", "missing: run 'make setup'"
    return True, "pyroute2", "importable"


def _mosquitto() -> Check:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists(
        "/usr/sbin/mosquitto") else None)  # fmt: skip
    if path is None:
        return False, "mosquitto", "missing (the mqtt broker): apt-get install mosquitto"
    return True, "mosquitto", path


def _postgres() -> Check:
    from bench.services import ServiceError
    from bench.services.postgres import wheel_dirs

    try:
        package, _ = wheel_dirs()
    except ServiceError as exc:
        return False, "postgres", str(exc)
    binary = package / "pginstall" / "bin" / "postgres"
    ok = os.access(binary, os.X_OK)
    return ok, "postgres", str(binary) if ok else f"{binary} is missing or not executable"


def _open_files() -> Check:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ok = soft >= 1024
    return ok, "open files limit", f"{soft}" + ("" if ok else " (want 1024+)")


def _state_dir() -> Check:
    ok = os.access("/run", os.W_OK)
    return ok, "state dir", "/run/ipcbench writable" if ok else "/run not writable"


def _container() -> Check:
    """The whole path: a real container on a lab network runs this project's Python."""
    import sys
    import time

    from runtime import PROJECT_ROOT
    from runtime.container import ContainerSpec
    from runtime.local import LocalRuntime

    if os.geteuid() != 0:
        return False, "container", "not tried: needs root"
    t0 = time.monotonic()
    with LocalRuntime() as rt, rt.network() as net:
        command = (sys.executable, "-c", "import bench, transports")
        spec = ContainerSpec(name="doctor", command=command, cwd=str(PROJECT_ROOT))
        with rt.container(spec, net) as c:
            c.start()
            code = c.wait(30)
            logs = c.logs().strip().splitlines()
    ms = (time.monotonic() - t0) * 1000
    if code != 0:
        return False, "container", f"exit {code}: {logs[-1] if logs else 'no output'}"
    return True, "container", f"started one, ran this project's Python in it ({ms:.0f} ms)"


CHECKS: list[Callable[[], Check]] = [
    _root,
    _kernel,
    _namespaces,
    _cgroups,
    _pyroute2,
    _mosquitto,
    _postgres,
    _open_files,
    _state_dir,
    _container,
]


def checks() -> list[Check]:
    out = []
    for check in CHECKS:
        try:
            out.append(check())
        except Exception as exc:
            out.append((False, check.__name__.strip("_"), f"check failed: {exc}"))
    return out
