"""The built-in ``hello`` image: what the runtime just did, told from inside the container.

Like ``docker run hello-world``, but every line is read from the kernel at
the moment it is printed (``/proc/self/...``), not recited: if a step had not
happened, the text would show it. Runs under ``python -S`` (standard library
only) as the container's workload.
"""

from __future__ import annotations

import os
import socket
import textwrap

from runtime.caps import CAPS, read_status


def _mounts() -> list[tuple[str, str, str, str]]:
    with open("/proc/self/mounts") as f:
        return [tuple(line.split()[:4]) for line in f]  # type: ignore[misc]


def _interfaces() -> str:
    names = sorted(os.listdir("/sys/class/net"))
    return ", ".join(names)


def _addresses() -> str:
    try:
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown"
    found = {
        lines[i - 1].split()[-1]
        for i, line in enumerate(lines)
        if "/32 host LOCAL" in line and i > 0
    }
    return ", ".join(sorted(found)) or "none"


def _cgroups() -> list[str]:
    with open("/proc/self/cgroup") as f:
        return [line.strip() for line in f if "ipcbench-" in line]


def _cap_names(mask: int) -> str:
    return ", ".join(
        name for name, bit in sorted(CAPS.items(), key=lambda i: i[1]) if mask >> bit & 1
    )


def text() -> str:
    status = read_status()
    mounts = _mounts()
    root = next((m for m in mounts if m[1] == "/"), ("?", "/", "?", "?"))
    with open("/proc/1/cmdline", "rb") as f:
        pid1 = f.read().split(b"\0")[0].decode(errors="replace")
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    cgroups = _cgroups()
    steps = [
        "Hello from ipcbench!",
        "This message shows that the built-in runtime made a container and ran this in it.",
        "",
        "To do that, the runtime:",
        " 1. Started a shim: a fresh, single-threaded `python -S` process (never the harness:",
        "    unshare() and setns() act on the calling thread, and the harness may have threads).",
        " 2. Put the shim in the container's own cgroups, before anything else, so that every",
        "    process of the container is counted, limited and killable as one:",
        *[f"      {line}" for line in cgroups or ["(no ipcbench cgroup: unexpected)"]],
        " 3. Unshared the mount, UTS, IPC, network and pid namespaces, then forked pid 1.",
        f"    You are pid {os.getpid()}; pid 1 is `{os.path.basename(pid1)}` (the init, which",
        f"    reaps and forwards signals); these are all the processes you can see: {pids}.",
        f"    Your hostname is {socket.gethostname()!r}, the host's is not yours to change.",
        " 4. Built a root filesystem in the new mount namespace: a small tmpfs skeleton with",
        "    read-only binds of the host's directories (or of an image), fresh /proc and /sys,",
        "    a minimal /dev, private writable /tmp and /run, and the volumes asked for;",
        "    kernel files Docker masks (/proc/keys, /proc/timer_list, /sys/firmware, ...) are",
        "    covered and /proc/sys, /proc/irq, /proc/bus are read-only.",
        f"    {len(mounts)} mounts are visible from here.",
        " 5. Called pivot_root() to make that skeleton `/` and detached the old root: your",
        f"    `/` is a {root[2]} ({root[0]}), mounted {root[3].split(',')[0]}.",
        " 6. Wired the network: interfaces " + _interfaces() + "; addresses " + _addresses() + ".",
        "    On the lab network eth0 is one end of a veth pair whose other end is on a bridge",
        "    in a namespace of its own; there is no default route, so only the lab is reachable.",
        " 7. Dropped capabilities to Docker's default set and set no_new_privs:",
        f"    CapEff {status['CapEff']:016x}:",
        *textwrap.wrap(
            _cap_names(status["CapEff"]) or "none",
            84,
            initial_indent="      ",
            subsequent_indent="      ",
        ),
        f"    NoNewPrivs {status['NoNewPrivs']}: no setuid binary can give any of it back.",
        " 8. Exec'd this program, and reported `started` to the harness.",
        "",
        "When this program exits, pid 1 exits with its status, the kernel ends the pid",
        "namespace, and the runtime removes the veth, the cgroups and the state.",
        "",
        "Try something more ambitious: ipcbench container run --rm -it -- bash",
    ]
    return "\n".join(steps) + "\n"


def main() -> int:
    print(text(), end="")
    return 0
