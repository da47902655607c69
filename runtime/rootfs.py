"""The container's root filesystem, built inside its own mount namespace.

The root is a small tmpfs *skeleton* holding one read-only recursive bind of
each top-level directory of the host (so the project's virtualenv runs inside
wherever the checkout lives), symlinks copied as they are, and fresh mounts
for what must be private: ``/proc``, ``/sys`` (read-only), a minimal ``/dev``,
and writable tmpfs ``/tmp`` and ``/run``. The skeleton lets a volume be
mounted at a new top-level path such as ``/shared`` without touching the
host; it is made read-only before ``pivot_root``.

Runs only in the container init, after ``unshare(CLONE_NEWNS|CLONE_NEWPID)``
and the fork that made it pid 1.
"""

from __future__ import annotations

import os

from runtime import syscalls as sc

TYPE_CHECKING = False  # not typing's: the init does not import typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

# Replaced by fresh mounts below, never bound from the host.
PRIVATE_TOP = {"proc", "sys", "dev", "tmp", "run", "lost+found"}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Docker's masked and read-only paths (moby oci/defaults.go): kernel state a
# container must not read (a file gets /dev/null over it, a directory an empty
# read-only tmpfs) or must not change (bound read-only over itself).
MASKED = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def build(
    root: str,
    *,
    volumes: list[dict[str, Any]],
    files: list[dict[str, Any]],
    image: str | None = None,
    console: str | None = None,
) -> None:
    """Assemble the container root at ``root`` and make it ``/``.

    ``image``: an unpacked root filesystem whose top-level directories are
    bound (read-only) instead of the host's. ``console``: the host path of the
    pty slave given as the workload's stdio, bound at /dev/console so that
    ``tty`` and job control find a name for it (runc does the same).
    """
    # Nothing we mount from here on may propagate back to the host.
    sc.mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("ipcbench-root", root, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755,size=1m")
    _bind_tree(image or "/", root)
    _mount_private(root)
    if console:
        _bind(console, root + "/dev/console", readonly=False)
    for volume in volumes:
        _bind(volume["source"], root + volume["target"], readonly=volume.get("readonly", False))
    for file in files:
        if image and not os.path.exists(root + file["target"]):
            continue  # an image without /etc/hosts cannot get one: its /etc is read-only
        _bind(file["source"], root + file["target"], readonly=True)
    sc.mount(
        "none", root, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
    )
    _pivot(root)


def _bind_tree(base: str, root: str) -> None:
    for entry in sorted(os.listdir(base)):
        source, target = os.path.join(base, entry), os.path.join(root, entry)
        if entry in PRIVATE_TOP:
            continue
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            os.mkdir(target)
            sc.mount(source, target, None, sc.MS_BIND | sc.MS_REC)
            sc.make_readonly_recursive(target)


def _mount_private(root: str) -> None:
    for name in ("proc", "sys", "dev", "tmp", "run"):
        os.mkdir(os.path.join(root, name))
    sc.mount("proc", root + "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    ro_sys = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    sc.mount("sysfs", root + "/sys", "sysfs", ro_sys)
    _mask(root)
    sc.mount("tmpfs", root + "/tmp", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777")
    sc.mount("tmpfs", root + "/run", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755")
    _minimal_dev(root + "/dev")


def _mask(root: str) -> None:
    for path in MASKED:
        target = root + path
        if os.path.isdir(target):
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, "size=0")
        elif os.path.exists(target):
            sc.mount("/dev/null", target, None, sc.MS_BIND)  # still the host's /dev
    for path in READONLY:
        target = root + path
        if os.path.exists(target):
            sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
            sc.make_readonly_recursive(target)


def _minimal_dev(dev: str) -> None:
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID, "mode=755,size=64k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        open(target, "w").close()  # a bind mount needs an existing target
        sc.mount("/dev/" + name, target, None, sc.MS_BIND)
    for name in ("pts", "shm"):
        os.mkdir(os.path.join(dev, name))
    sc.mount(
        "devpts",
        dev + "/pts",
        "devpts",
        sc.MS_NOSUID | sc.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )
    sc.mount("tmpfs", dev + "/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", os.path.join(dev, name))


def _bind(source: str, target: str, *, readonly: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        open(target, "w").close()
    sc.mount(source, target, None, sc.MS_BIND | sc.MS_REC)
    if readonly:
        sc.make_readonly_recursive(target)


def _pivot(root: str) -> None:
    # pivot_root(".", "."), then detach the old root stacked on top (runc's way):
    # no directory for the old root is needed in a read-only tree.
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
