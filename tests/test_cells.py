"""Cells between real containers: integrity counters, faults, and a peer that dies."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from bench.cell import run_cell
from bench.scenario import Cell
from runtime.local import LocalRuntime
from runtime.network import LabNetwork

pytestmark = pytest.mark.needs_root


@pytest.fixture
def lab(rt: LocalRuntime) -> Iterator[LabNetwork]:
    with rt.network() as net:
        yield net


def cell(
    mode: str = "throughput", messages: int = 400, size: int = 256, transport: str = "tcp"
) -> Cell:
    return Cell(transport, None, mode, size, messages, warmup=20)


@pytest.mark.parametrize(
    ("fault", "counter"),
    [
        ("drop", "lost"),
        ("duplicate", "duplicated"),
        ("reorder", "reordered"),
        ("corrupt", "corrupt"),
    ],
)
def test_each_injected_fault_is_caught_by_its_counter(
    rt: LocalRuntime, lab: LabNetwork, fault: str, counter: str
) -> None:
    result = run_cell(
        rt, lab, cell(), index=0, op_timeout=5.0, options={}, faults={fault: [10, 200]}
    )
    assert result["status"] == "failed", result
    assert f"integrity: 2 {counter}" in result["error"]
    counts = result["messages"]
    assert counts[counter] == 2
    others = {"lost", "duplicated", "reordered", "corrupt"} - {counter}
    assert all(counts[k] == 0 for k in others), counts


def test_corrupt_reply_caught_in_latency_mode(rt: LocalRuntime, lab: LabNetwork) -> None:
    result = run_cell(
        rt, lab, cell("latency", 200), index=0, op_timeout=5.0, options={}, faults={"corrupt": [50]}
    )
    assert result["status"] == "failed"
    assert result["messages"]["corrupt"] == 1


@pytest.mark.parametrize("transport", ["tcp", "uds"])
@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_clean_cell_is_ok_and_complete(
    rt: LocalRuntime, lab: LabNetwork, transport: str, mode: str
) -> None:
    result = run_cell(
        rt, lab, cell(mode, 500, 1024, transport), index=0, op_timeout=5.0, options={}
    )
    assert result["status"] == "ok", result["error"]
    m = result["messages"]
    assert (m["sent"], m["received"]) == (500, 500)
    assert m["lost"] == m["duplicated"] == m["reordered"] == m["corrupt"] == 0
    cpu = result["cpu_us_per_msg"]
    assert cpu["client"] > 0 and cpu["server"] > 0
    if mode == "latency":
        lat = result["latency_us"]
        assert lat["count"] == 500
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    else:
        assert result["throughput"]["msgs_per_s"] > 0
        assert result["throughput"]["bytes_per_s"] > 1024 * result["throughput"]["msgs_per_s"] * 0.9


def test_killed_server_fails_only_its_cell(rt: LocalRuntime, lab: LabNetwork) -> None:
    def kill_server_soon() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                server = rt.get("server")
            except KeyError:
                time.sleep(0.01)
                continue
            time.sleep(1.5)  # well inside the cell: it runs for many seconds
            server.signal(signal.SIGKILL)
            return

    killer = threading.Thread(target=kill_server_soon)
    killer.start()
    t0 = time.monotonic()
    result = run_cell(rt, lab, cell("latency", 400_000, 64), index=0, op_timeout=5.0, options={})
    elapsed = time.monotonic() - t0
    killer.join()
    assert result["status"] == "failed"
    assert "client" in result["error"] and (
        "PeerClosed" in result["error"] or "TransportError" in result["error"]
    )
    assert elapsed < 12, "a dead peer fails the cell within its timeout, not the cell deadline"
    after = run_cell(rt, lab, cell("latency", 100, 64), index=1, op_timeout=5.0, options={})
    assert after["status"] == "ok", after["error"]


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_time_limit_ends_a_cell_early_and_says_so(
    rt: LocalRuntime, lab: LabNetwork, mode: str
) -> None:
    slow = Cell("tcp", None, mode, 64, 5_000_000, warmup=100, max_seconds=0.5)
    t0 = time.monotonic()
    result = run_cell(rt, lab, slow, index=0, op_timeout=5.0, options={})
    elapsed = time.monotonic() - t0
    assert result["status"] == "ok", result["error"]
    sent = result["messages"]["sent"]
    assert 0 < sent < 5_000_000
    assert result["messages"]["received"] == sent
    assert "time limit" in result["notes"][0]
    assert elapsed < 15
    if mode == "latency":
        assert result["latency_us"]["count"] == sent


def test_a_cpu_quota_that_throttles_is_flagged(rt: LocalRuntime, lab: LabNetwork) -> None:
    quota = {"cpus": 0.05}
    result = run_cell(
        rt, lab, cell("throughput", 3000, 1024), index=0, op_timeout=10.0, options={}, limits=quota
    )
    assert result["status"] == "ok", result["error"]
    assert set(result["settings"]["throttled"]) & {"client", "server"}
    assert any("CPU quota throttled" in note for note in result["notes"])
    assert result["settings"]["container_limits"] == quota
