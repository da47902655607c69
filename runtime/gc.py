"""Sweep what dead runs left behind.

Containers and lab networks end by themselves when their controller dies
(EOF on their control pipe, see ``runtime/init.py``); what can remain are
cgroup directories and state directories. A run is dead when the process
named in its ``owner.json`` is gone, or is another process that reused the
pid (its start time differs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path

from runtime.cgroups import PREFIX, Cgroup, Layout

log = logging.getLogger(__name__)


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone.

    A zombie is gone: it holds no pipe and no file any more, only its exit status.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing paren.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def run_is_alive(state_dir: Path) -> bool:
    try:
        owner = json.loads((state_dir / "owner.json").read_text())
    except (OSError, ValueError):
        return False
    return process_start_ticks(owner["pid"]) == owner["start_ticks"]


def stale_cgroup_runs(layout: Layout, live: set[str]) -> dict[str, list[Path]]:
    """Run ids of cgroup dirs named ``ipcbench-<run>`` whose run is not live."""
    found: dict[str, list[Path]] = {}
    for parent in layout.hierarchy_dirs():
        for d in parent.glob(PREFIX + "*"):
            run_id = d.name[len(PREFIX) :]
            if d.is_dir() and run_id not in live:
                found.setdefault(run_id, []).append(d)
    return found


STAGING_PREFIX = ".staging-"
RECORDS_DIR = "containers"  # runtime/records.py
STAGING_GRACE_S = 60.0  # a state dir being assembled is left alone this long


def sweep(state_root: Path, layout: Layout) -> list[str]:
    """Remove the leftovers of every dead run; returns what was removed."""
    removed: list[str] = []
    live: set[str] = set()
    if state_root.is_dir():
        for state_dir in sorted(state_root.iterdir()):
            if state_dir.name == RECORDS_DIR:
                continue  # the command line's container records: swept below
            if state_dir.name.startswith(STAGING_PREFIX):
                if time.time() - state_dir.stat().st_mtime > STAGING_GRACE_S:
                    shutil.rmtree(state_dir, ignore_errors=True)
                continue
            if run_is_alive(state_dir):
                live.add(state_dir.name)
                continue
            shutil.rmtree(state_dir, ignore_errors=True)
            removed.append(f"state {state_dir}")
    for run_id, dirs in stale_cgroup_runs(layout, live).items():
        names = {child.name for d in dirs for child in d.iterdir() if child.is_dir()}
        for name in sorted(names):
            Cgroup.existing(layout, run_id, name).remove()
            removed.append(f"cgroup {PREFIX}{run_id}/{name}")
        for d in dirs:
            with contextlib.suppress(FileNotFoundError):
                d.rmdir()
        removed.append(f"cgroup {PREFIX}{run_id}")
    from runtime import records  # it imports this module

    removed += records.sweep_dead(state_root / RECORDS_DIR)
    for line in removed:
        log.info("gc: removed %s", line)
    return removed
