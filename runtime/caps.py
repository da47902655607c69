"""Capabilities and no_new_privs: a container keeps Docker's default set, no more.

Root inside a container is still root on the host's kernel: what stops it
from loading modules, mounting over the masks or changing the clock is the
capability set. We keep exactly Docker's default (moby's
``oci/caps/defaults.go``) in the bounding, effective and permitted sets, clear
the inheritable and ambient sets (as Docker does since CVE-2022-24769), and
set ``no_new_privs`` so that no setuid binary or file capability can win any
back. Runs only in single-threaded processes of the container (its pid 1
and the ``exec`` helper), never in the harness.
"""

from __future__ import annotations

import ctypes
import os

CAPS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}
DEFAULT_MASK = sum(1 << bit for bit in CAPS.values())  # 0xa80425fb, Docker's CapEff

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    result = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0)
    _check(result, f"prctl({option}, {arg2})")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:  # /proc/sys masked or absent: the kernel of 2024 knows 41 (0..40)
        return 40


def capset(mask: int, *, inheritable: int = 0) -> None:
    """Set effective and permitted to ``mask`` (two 32-bit words, version 3)."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for word in (0, 1):
        bits = (mask >> (32 * word)) & 0xFFFFFFFF
        data[word] = _Data(bits, bits, (inheritable >> (32 * word)) & 0xFFFFFFFF)
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def restrict(mask: int = DEFAULT_MASK) -> None:
    """Reduce this process (and all it will exec) to the capabilities in ``mask``.

    The bounding set goes first (dropping needs CAP_SETPCAP, which ``capset``
    may then remove); root's capabilities after an ``exec`` are its bounding
    set, so this is what a root workload ends up with.
    """
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    for cap in range(last_cap() + 1):
        if not mask & (1 << cap):
            _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    capset(mask)


def read_status(pid: int | str = "self") -> dict[str, int]:
    """The Cap* masks and NoNewPrivs of a process, from ``/proc/<pid>/status``."""
    wanted = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"}
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in wanted:
                found[key] = int(value.strip(), 16 if key.startswith("Cap") else 10)
    return found
