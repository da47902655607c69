"""A controller SIGKILLed at any point leaves nothing that ``ipcbench gc`` does not remove.

The real harness (``ipcbench run``) kills itself at a named point of the
runtime through the documented test hook ``IPCBENCH_CRASH_AT``
(runtime/crashpoint.py). Containers and the lab end by themselves (their
control pipes reach EOF); gc removes cgroups and state. Namespace teardown is
asynchronous, so every check polls with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.crashpoint import ENV, POINTS
from runtime.local import STATE_ROOT
from tests.leftovers import leftovers

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
RUN = [sys.executable, "-m", "bench.cli", "run", "--transport", "tcp", "--quick"]


def in_cgroup_of(pid: str, run_id: str) -> bool:
    try:
        return run_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def left_by(run_id: str) -> list[str]:
    """What the run left: its own objects, and any veth or bridge in the host namespace."""
    found = []
    for item in leftovers(run_id):
        if item.startswith("process "):
            pid, _, cmdline = item.removeprefix("process ").partition(":")
            # An agent of another (concurrent) run is not ours: tell by its cgroup.
            if f"ipcbench-{run_id}" not in cmdline and not in_cgroup_of(pid, run_id):
                continue
        found.append(item)
    return found


def poll_clean(run_id: str, timeout: float, kinds: tuple[str, ...] = ()) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [x for x in left_by(run_id) if not kinds or x.startswith(kinds)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def run_id_of(pid: int) -> str:
    for state_dir in STATE_ROOT.iterdir():
        try:
            if json.loads((state_dir / "owner.json").read_text())["pid"] == pid:
                return state_dir.name
        except (OSError, ValueError, KeyError):
            continue
    raise AssertionError(f"no state dir is owned by {pid}")


def gc() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "gc"], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "point",
    ["lab-open", "lab-attach", "container-started:2", "container-remove", "runtime-close"],
)
def test_sigkill_at_a_point_then_gc_leaves_nothing(tmp_path: Path, point: str) -> None:
    assert point.partition(":")[0] in POINTS
    env = {**os.environ, ENV: point}
    proc = subprocess.Popen(
        [*RUN, "--out", str(tmp_path / "run")], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, f"the hook did not fire at {point}: {err}"
    run_id = run_id_of(proc.pid)
    # Containers and the lab follow their controller by themselves, before any gc.
    assert poll_clean(run_id, 10, kinds=("process",)) == []
    assert "removed" in gc()
    assert poll_clean(run_id, 10) == []
    assert not (STATE_ROOT / run_id).exists()


def test_two_runs_at_once_do_not_collide(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [*RUN, "--out", str(tmp_path / f"run{i}")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for i in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outcomes, strict=True):
        assert p.returncode == 0, out + err
        assert "2 ok, 0 failed" in out
    ids = {json.loads((tmp_path / f"run{i}" / "results.json").read_text())["run"]["id"]
           for i in range(2)}  # fmt: skip
    assert len(ids) == 2
    for run_id in ids:
        assert left_by(run_id) == []
