"""Rendering a run directory: CSV, report.md, charts."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread

from bench.reading import MODES, Grid, fmt3, fmt_size, plain_reading
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


def test_reading_of_a_long_field_names_leader_runner_up_and_last() -> None:
    medians = {"a": 40.0, "b": 10.0, "c": 25.0, "d": 12.0}
    cells = []
    for name, p50 in medians.items():
        c = cell("tcp", "latency", 64)
        c["latency_us"] = {**c["latency_us"], "p50": p50, "p99": p50 * 2}
        cells.append({**c, "transport": name})
    grids = {mode: Grid.of(cells, mode) for mode in MODES}
    reading = "\n".join(plain_reading(grids, cells))
    assert (
        "- At 64 B, b has the fastest median round trip (10.0 µs); the next, d, takes 1.2× as "
        "long (12.0 µs); the slowest of 4, a, takes 4× as long (40.0 µs)." in reading
    )
    assert " c " not in reading and "c," not in reading
    assert "No cell" not in reading and "failed" not in reading


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.012345, "0.0123"), (1.0, "1.00"), (23.14, "23.1"), (160.0, "160"), (999.7, "1,000"),
     (1234.5, "1,230"), (123456.0, "123,000"), (0.0, "0")],
)  # fmt: skip
def test_three_significant_digits(value: float, text: str) -> None:
    assert fmt3(value) == text


def test_sizes_in_binary_units() -> None:
    assert [fmt_size(n) for n in (1, 64, 1000, 1024, 1536, 65536, 1 << 20)] == [
        "1 B", "64 B", "1000 B", "1 KiB", "1536 B", "64 KiB", "1 MiB",
    ]  # fmt: skip
