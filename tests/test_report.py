"""Rendering a run directory: CSV, report.md, charts."""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread

from bench.report import render_report
from bench.results import SCHEMA, ResultsError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = (64, 1024, 65536)
# Median and throughput per transport and size; p99 is twice the median.
P50 = {"tcp": (30.0, 37.0, 80.0), "uds": (18.0, 23.1, 50.0)}
MSGS = {"tcp": (200_000.0, 150_000.0, 20_000.0), "uds": (400_000.0, 300_000.0, 30_000.0)}


def cell(transport: str, mode: str, size: int, **overrides: Any) -> dict[str, Any]:
    i = SIZES.index(size) if size in SIZES else 0
    p50, msgs = P50[transport][i], MSGS[transport][i]
    latency = {
        "count": 5000,
        "min": p50 * 0.7,
        "p50": p50,
        "p90": p50 * 1.5,
        "p99": p50 * 2,
        "p999": p50 * 3,
        "max": p50 * 10,
        "mean": p50 * 1.1,
    }
    base = {
        "transport": transport, "variant": None, "mode": mode, "payload_bytes": size,
        "header_bytes": 32, "status": "ok", "error": None, "settings": {},
        "started": "2025-06-01T12:00:00+00:00", "duration_s": 1.0,
        "messages": {"sent": 5000, "received": 5000, "lost": 0, "duplicated": 0,
                     "reordered": 0, "corrupt": 0},
        "latency_us": latency if mode == "latency" else None,
        "throughput": {"msgs_per_s": msgs, "bytes_per_s": msgs * size}
        if mode == "throughput" else None,
        "cpu_us_per_msg": {"client": 12.3 if transport == "tcp" else 8.0, "server": 11.0},
        "notes": [],
    }  # fmt: skip
    return {**base, **overrides}


def write_run(run_dir: Path, cells: list[dict[str, Any]], **run: Any) -> Path:
    run_info = {
        "id": "run-42", "start": "2025-06-01T12:00:00+00:00", "end": "2025-06-01T12:10:00+00:00",
        "runtime": {"name": "ipcbench-local", "namespaces": ["pid", "net"]}, "commit": "a540045",
        "host": {"cpu_model": "Test CPU 9000", "cores": 8, "kernel": "6.1.0-test",
                 "cgroup_layout": "v2"},
        "versions": {"python": "3.11.2", "libraries": {"matplotlib": "3.11.2"}}, "scenario": {},
    }  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {"schema": SCHEMA, "run": {**run_info, **run}, "cells": cells}
    (run_dir / "results.json").write_text(json.dumps(doc))
    return run_dir


def full_run(run_dir: Path) -> Path:
    cells = [cell(t, m, s) for m in ("latency", "throughput") for t in P50 for s in SIZES]
    lossy = next(c for c in cells if c["transport"] == "uds" and c["mode"] == "throughput")
    lossy["messages"] = {**lossy["messages"], "received": 4997, "lost": 3}
    failed = cell("tcp", "latency", 1 << 20, status="failed", latency_us=None,
                  cpu_us_per_msg=None, messages=None, notes=["gave up after 3 retries"],
                  error="TransportTimeout: no reply within 5.0 s\n  after 12 messages")  # fmt: skip
    return write_run(run_dir, [*cells, failed])


def section(markdown: str, title: str) -> str:
    """The text of one ``## title`` section of the report."""
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= 800 and height >= 400 and len(data) > 20_000
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.05, f"{path.name} is (nearly) blank"


def test_full_report(tmp_path: Path) -> None:
    run_dir = full_run(tmp_path / "run")
    written = render_report(run_dir)
    names = ["results.csv", "report.md", "latency.png", "throughput.png"]
    assert written == [run_dir / n for n in names]
    assert all(p.is_file() for p in written)
    check_png(run_dir / "latency.png")
    check_png(run_dir / "throughput.png")
    with (run_dir / "results.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 13

    md = (run_dir / "report.md").read_text()
    assert md.startswith("# ipcbench run run-42\n")
    assert "Test CPU 9000, 8 cores, kernel 6.1.0-test, cgroup layout v2" in md
    assert "a540045" in md and "2025-06-01T12:00:00+00:00" in md
    assert "Runtime: ipcbench-local; versions: python 3.11.2, matplotlib 3.11.2" in md

    latency = section(md, "Latency")
    assert "round-trip time (client sends, server echoes, client receives)" in latency
    assert "monotonic clock" in latency and "5,000 samples" in latency
    header = "| transport | 64 B p50 / p99 µs | 1 KiB p50 / p99 µs | 64 KiB p50 / p99 µs "
    assert header + "| 1 MiB p50 / p99 µs |" in latency
    assert "| tcp | 30.0 / 60.0 | 37.0 / 74.0 | 80.0 / 160 | failed |" in latency
    assert "| uds | 18.0 / 36.0 | 23.1 / 46.2 | 50.0 / 100 | — |" in latency
    assert "| tcp | 12.3 + 11.0 | 12.3 + 11.0 | 12.3 + 11.0 | — |" in latency
    assert "![latency](latency.png)" in latency

    throughput = section(md, "Throughput")
    assert "MB = 10^6 bytes" in throughput
    assert "| tcp | 200,000 / 12.8 | 150,000 / 154 | 20,000 / 1,310 |" in throughput
    assert "| uds | 400,000 / 25.6 | 300,000 / 307 | 30,000 / 1,970 |" in throughput

    integrity = section(md, "Integrity")
    assert "| uds | throughput | 64 B | ok | 5000 | 4997 | 3 | 0 | 0 | 0 |" in integrity
    assert integrity.count("| tcp |") == 0 and integrity.count("| uds |") == 1

    failed = section(md, "Failed cells")
    error = "TransportTimeout: no reply within 5.0 s after 12 messages"  # newline collapsed
    assert f"- tcp, latency, 1 MiB: {error}" in failed
    assert "gave up after 3 retries" in section(md, "Notes")

    reading = section(md, "Plain reading")
    assert (
        "At 1 KiB, uds has the fastest median round trip (23.1 µs); tcp takes 1.6× as long "
        "(37.0 µs)." in reading
    )
    assert (
        "At 64 KiB, uds has the highest throughput (1,970 MB/s, 30,000 msg/s); "
        "tcp reaches 0.667× of it (1,310 MB/s)." in reading
    )
    assert "lowest for uds (19.0 µs); tcp uses 1.23× as much (23.3 µs)" in reading
    assert "1 cell failed" in reading


def test_one_transport_without_latency_results(tmp_path: Path) -> None:
    log_tail = "\n".join(f"log line {i}" for i in range(200))
    cells = [
        cell("tcp", "latency", 64, status="failed", error="refused\n" + log_tail, latency_us=None),
        *(cell("tcp", "throughput", s) for s in SIZES),
    ]
    run_dir = write_run(tmp_path, cells, end=None)
    stale = run_dir / "latency.png"
    stale.write_bytes(b"from an earlier rendering")
    written = render_report(run_dir)
    assert [p.name for p in written] == ["results.csv", "report.md", "throughput.png"]
    assert not stale.exists()
    check_png(run_dir / "throughput.png")
    md = (run_dir / "report.md").read_text()
    assert "interrupted" in md.split("## ", 1)[0]
    assert "No latency cell succeeded" in section(md, "Latency")
    reading = section(md, "Plain reading")
    assert "Only tcp has results, so this run compares no transports" in reading
    assert "uds" not in reading
    assert "At 64 B, only tcp has a throughput result: 12.8 MB/s, 200,000 msg/s." in reading
    failed = section(md, "Failed cells")
    assert "- tcp, latency, 64 B: refused log line 0 log line 1" in failed
    assert "log line 199" not in failed and "(full text in results.json)" in failed
    assert "No cell lost" in section(md, "Integrity")


def test_nothing_succeeded(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [cell("uds", "throughput", 64, status="failed", error="x")])
    assert [p.name for p in render_report(run_dir)] == ["results.csv", "report.md"]
    md = (run_dir / "report.md").read_text()
    assert "No cell succeeded" in md and "No throughput cell succeeded" in md


def test_unusable_results_raise_results_error(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"schema": "other@1"}')
    with pytest.raises(ResultsError, match="schema is 'other@1'"):
        render_report(tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_integrity_speaks_only_of_cells_that_counted_messages(tmp_path: Path) -> None:
    nothing = [cell(t, "latency", 64, status="failed", error="x", messages=None,
                    latency_us=None) for t in P50]  # fmt: skip
    md = (write_run(tmp_path / "a", nothing) / "report.md").parent
    render_report(md)
    integrity = section((md / "report.md").read_text(), "Integrity")
    assert "No cell counted messages, so there is nothing to say about integrity." in integrity
    assert "No cell lost" not in integrity

    some = [nothing[0], cell("uds", "latency", 64)]
    run_dir = write_run(tmp_path / "b", some)
    render_report(run_dir)
    integrity = section((run_dir / "report.md").read_text(), "Integrity")
    assert (
        "No cell lost, duplicated, reordered or corrupted a message "
        "(1 cell counted messages; 1 other cell counted none)." in integrity
    )


def header_of(run_dir: Path) -> str:
    render_report(run_dir)
    return (run_dir / "report.md").read_text().split("## ", 1)[0]


def test_header_says_plainly_how_much_of_an_interrupted_run_was_measured(tmp_path: Path) -> None:
    cells = [cell("tcp", "latency", 64), cell("uds", "latency", 64)]
    stopped = {"reason": "stopped by SIGINT", "at": "2025-06-01T12:03:00+00:00"}
    head = header_of(write_run(tmp_path / "a", cells, end=None, interrupted=stopped,
                               planned_cells=6))  # fmt: skip
    assert (
        "**Run interrupted (stopped by SIGINT) at 2025-06-01T12:03:00+00:00: measured 2 of 6 "
        "planned cells; these results are partial.**" in head
    )
    assert "→ interrupted at 2025-06-01T12:03:00+00:00" in head
    assert "- Cells: 2 of 6 planned (2 ok)" in head

    killed = header_of(write_run(tmp_path / "b", cells, end=None, planned_cells=6))
    assert "No end time: the run was interrupted and these results are partial" in killed
    assert "(measured 2 of 6 planned cells)" in killed

    whole = header_of(write_run(tmp_path / "c", cells, interrupted=None, planned_cells=2))
    assert "- Cells: 2 of 2 planned (2 ok)" in whole and "partial" not in whole
    unplanned = header_of(write_run(tmp_path / "d", cells))
    assert "- Cells: 2 (2 ok)" in unplanned and "partial" not in unplanned


def test_a_busy_host_is_flagged_in_the_header_and_the_reading(tmp_path: Path) -> None:
    cells = [cell(t, "latency", 64) for t in P50]
    busy = write_run(tmp_path / "busy", cells, host_load={"start": [1.0, 1.0, 1.0],
                                                          "end": [4.5, 3.0, 2.0]})  # fmt: skip
    render_report(busy)
    md = (busy / "report.md").read_text()
    warning = "other work was running. Absolute figures are inflated and unreliable; compare "
    assert "1.00 at the start and 4.50 at the end on 8 cores" in md
    assert warning in md.split("## ", 1)[0] and warning in section(md, "Plain reading")
    assert "Host load (1 / 5 / 15-minute averages): 1.00 / 1.00 / 1.00 at start" in md
    calm = write_run(tmp_path / "calm", cells, host_load={"start": [3.9, 1.0, 1.0], "end": None})
    render_report(calm)
    md = (calm / "report.md").read_text()
    assert "Host load (1 / 5 / 15-minute averages): 3.90 / 1.00 / 1.00 at start" in md
    assert "inflated" not in md


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    one = cell("tcp", "latency", 64, status="failed", error="x", messages=None, latency_us=None)
    ok = cell("uds", "latency", 64)
    ok["latency_us"] = {**ok["latency_us"], "count": 1}
    run_dir = write_run(tmp_path, [one, ok], end=None, planned_cells=1,
                        host={"cores": 1, "cpu_model": "c"})  # fmt: skip
    render_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "each cell holds 1 sample." in md and "1 cell counted messages" in md
    assert "1 core," in md and "1 cell failed" in md and "of 1 planned cell)" in md
    assert not re.search(r"\b1 (cells|samples|cores|planned cells)\b", md), md


def test_report_files_share_one_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        written = render_report(full_run(tmp_path))
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*written, tmp_path / "results.json"]}
    assert set(modes.values()) == {0o644}, modes


def test_service_containers_count_in_the_cpu_cost(tmp_path: Path) -> None:
    broker_cpu = {"client": 10.0, "server": 20.0, "broker": 30.0}
    cells = [
        cell("uds", "latency", 1024, cpu_us_per_msg=broker_cpu),
        cell("tcp", "latency", 1024, cpu_us_per_msg={"client": 10.0, "server": 20.0}),
    ]
    run_dir = write_run(tmp_path / "run", cells)
    render_report(run_dir)
    markdown = (run_dir / "report.md").read_text()
    assert "10.0 + 20.0 + 30.0 broker" in markdown
    assert "uses 2× as much (60.0 µs)" in markdown
    with (run_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["cpu_us_per_msg_services"] == "broker=30.0"
    assert rows[1]["cpu_us_per_msg_services"] == ""
