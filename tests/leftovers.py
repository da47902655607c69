"""Find anything of the project still on the machine (used by tests and their session check).

Only this checkout's runs count: another checkout's live run on the same
machine (a second clone, a user's run) is not a leak of ours.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from runtime import PROJECT_ROOT, cgroups
from runtime.local import STATE_ROOT


def _owner_is_elsewhere(run_id: str) -> bool:
    """True when the run's controller is alive and works from another checkout."""
    try:
        owner = json.loads((STATE_ROOT / run_id / "owner.json").read_text())
        cwd = os.readlink(f"/proc/{owner['pid']}/cwd")
    except (OSError, ValueError, KeyError):
        return False  # no live owner: whatever remains is a leak
    return not Path(cwd).is_relative_to(PROJECT_ROOT)


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
        found += [
            f"cgroup {d}"
            for d in parent.glob(tag + "*")
            if not _owner_is_elsewhere(d.name.removeprefix("ipcbench-"))
        ]
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if "ipcbench" in line]
    for proc in Path("/proc").iterdir():
        cmdline = _cmdline(proc) if proc.name.isdigit() else ""
        ours = str(PROJECT_ROOT) in cmdline or not cmdline.startswith("/")
        if ours and (tag in cmdline or "bench.agent" in cmdline):
            found.append(f"process {proc.name}: {cmdline[:120]}")
    if STATE_ROOT.is_dir():
        found += [
            f"state {d}"
            for d in STATE_ROOT.iterdir()
            if (not run_id or d.name == run_id) and not _owner_is_elsewhere(d.name)
        ]
    return found
