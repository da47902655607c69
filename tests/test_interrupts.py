"""A run stopped half way keeps what it measured and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.leftovers import leftovers

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
LONG_RUN = [
    "--transport",
    "tcp",
    "--mode",
    "latency",
    "--size",
    "64",
    "--size",
    "128",
    "--size",
    "256",
    "--size",
    "512",
    "--messages",
    "20000",
]


def start_run(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", *LONG_RUN, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_cells(out: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(json.loads((out / "results.json").read_text())["cells"]) >= count:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {count} cells in {timeout}s")


def wait_until_clean(timeout: float = 10) -> list[str]:
    # Containers end asynchronously once their controller is gone: poll with a deadline.
    deadline = time.monotonic() + timeout
    while (left := [x for x in leftovers() if x.startswith("process")]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_keeps_results_and_cleans_up(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    proc = start_run(out)
    wait_for_cells(out, 1)
    os.killpg(proc.pid, signum)  # as Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    assert "what was measured is kept" in err and "Traceback" not in err
    results = json.loads((out / "results.json").read_text())
    assert results["cells"] and all(c["status"] == "ok" for c in results["cells"][:1])
    assert results["run"]["end"] is None, "an interrupted run has no end"
    assert results["run"]["interrupted"]["reason"].startswith("stopped by SIG")
    assert results["run"]["planned_cells"] == 4
    assert (out / "report.md").exists()
    assert not leftovers(), leftovers()


def test_sigkill_of_the_controller_then_gc(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_run(out)
    wait_for_cells(out, 1)
    time.sleep(0.3)  # inside the next cell
    proc.kill()
    proc.communicate(timeout=10)
    assert wait_until_clean() == [], "containers must not outlive their controller"
    gc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "gc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert gc.returncode == 0, gc.stderr
    assert "removed" in gc.stdout
    assert not leftovers(), leftovers()
    assert json.loads((out / "results.json").read_text())["cells"], "measured cells survive"
