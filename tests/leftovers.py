"""Find anything of the project still on the machine (used by tests and their session check)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runtime import cgroups
from runtime.local import STATE_ROOT


def leftovers(run_id: str | None = None) -> list[str]:
    """ipcbench's namespaces, links, cgroups, mounts, processes and state (of one run)."""
    tag = f"ipcbench-{run_id}" if run_id else "ipcbench-"
    found: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line}" for line in netns.splitlines() if "ipcb" in line]
    for kind in ("veth", "bridge"):
        links = subprocess.run(
            ["ip", "-o", "link", "show", "type", kind], capture_output=True, text=True
        ).stdout
        found += [
            f"{kind} {line.split(':')[1].strip()}"
            for line in links.splitlines()
            if "docker0" not in line
        ]
    for parent in cgroups.detect().hierarchy_dirs():
        found += [f"cgroup {d}" for d in parent.glob(tag + "*")]
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if "ipcbench" in line]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if tag in cmdline or "bench.agent" in cmdline:
            found.append(f"process {proc.name}: {cmdline[:120]}")
    if STATE_ROOT.is_dir():
        found += [f"state {d}" for d in STATE_ROOT.iterdir() if not run_id or d.name == run_id]
    return found
