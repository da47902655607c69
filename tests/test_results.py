"""Latency statistics and the results contract (results.json, CSV)."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import stat
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bench.results import (
    CSV_COLUMNS,
    RESULTS_FILE,
    SCHEMA,
    ResultsError,
    ResultsWriter,
    load_results,
    write_csv,
)
from bench.stats import PERCENTILES, LatencySummary, nearest_rank

ROOT = Path(__file__).resolve().parents[1]


def brute_force_percentile(samples: list[int], quantile: Fraction) -> int:
    """The smallest sample v with #(samples <= v) / n >= quantile, by exhaustive search."""
    n = len(samples)
    candidates = [v for v in set(samples) if Fraction(sum(s <= v for s in samples), n) >= quantile]
    return min(candidates)


def cell(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transport": "tcp", "variant": None, "mode": "latency", "payload_bytes": 1024,
        "header_bytes": 32, "status": "ok", "error": None, "settings": {"nodelay": True},
        "started": "2025-01-01T00:00:00+00:00", "duration_s": 1.23,
        "messages": {"sent": 5000, "received": 5000, "lost": 0, "duplicated": 0,
                     "reordered": 0, "corrupt": 0},
        "latency_us": {"count": 5000, "min": 21.1, "p50": 30.2, "p90": 33.0, "p99": 41.5,
                       "p999": 60.25, "max": 99.9, "mean": 31.0},
        "throughput": None,
        "cpu_us_per_msg": {"client": 12.3, "server": 11.0},
        "notes": [],
    }  # fmt: skip
    return {**base, **overrides}


# --- statistics --------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 99, 100, 101, 999, 1000, 1001, 2345])
def test_percentiles_match_brute_force_definition(n: int) -> None:
    rng = random.Random(n)
    # Few distinct values force ties, many force exact ranks; try both.
    for spread in (5, 10**9):
        samples = [rng.randrange(spread) for _ in range(n)]
        summary = LatencySummary.from_ns(samples)
        for name, q in PERCENTILES.items():
            assert getattr(summary, name) == brute_force_percentile(samples, q), (name, spread)
        assert summary.count == n
        assert summary.min == min(samples) and summary.max == max(samples)
        assert summary.mean == pytest.approx(sum(samples) / n)


def test_known_small_cases() -> None:
    one_to_100 = LatencySummary.from_ns(range(100, 0, -1))
    assert (one_to_100.p50, one_to_100.p90, one_to_100.p99, one_to_100.p999) == (50, 90, 99, 100)
    one_to_1000 = LatencySummary.from_ns(range(1, 1001))
    assert (one_to_1000.p50, one_to_1000.p99, one_to_1000.p999) == (500, 990, 999)
    # The textbook nearest-rank example: 15, 20, 35, 40, 50 has a median of 35.
    assert LatencySummary.from_ns([50, 15, 40, 20, 35]).p50 == 35
    assert nearest_rank([15, 20, 35, 40, 50], Fraction(30, 100)) == 20
    assert nearest_rank([15, 20, 35, 40, 50], Fraction(0)) == 15
    single = LatencySummary.from_ns([7])
    assert single == LatencySummary(count=1, min=7, p50=7, p90=7, p99=7, p999=7, max=7, mean=7.0)


def test_from_ns_leaves_input_alone_and_rejects_nonsense() -> None:
    samples = [3, 1, 2]
    LatencySummary.from_ns(samples)
    assert samples == [3, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        LatencySummary.from_ns([])
    with pytest.raises(ValueError, match="negative"):
        LatencySummary.from_ns([5, -1])


def test_to_us_dict_converts_and_rounds() -> None:
    summary = LatencySummary.from_ns([1, 1500, 1_234_567, 2_000_000])
    us = summary.to_us_dict()
    assert list(us) == ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"]
    assert us["count"] == 4 and isinstance(us["count"], int)
    assert us["min"] == 0.001 and us["p50"] == 1.5 and us["max"] == 2000.0
    assert us["p90"] == 2000.0 and us["p99"] == 2000.0
    assert us["mean"] == round((1 + 1500 + 1_234_567 + 2_000_000) / 4 / 1000, 3)
    assert json.loads(json.dumps(us)) == us


def test_200k_samples_are_fast() -> None:
    rng = random.Random(1)
    samples = [rng.randrange(10_000, 10_000_000) for _ in range(200_000)]
    start = time.perf_counter()
    summary = LatencySummary.from_ns(samples)
    elapsed = time.perf_counter() - start
    assert summary.p50 == sorted(samples)[99_999]
    assert elapsed < 1.0, f"from_ns took {elapsed:.2f} s for 200k samples"


# --- results.json --------------------------------------------------------------


def test_writer_writes_run_at_once_and_each_cell_after_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_info = {"id": "r1", "start": "2025-01-01T00:00:00+00:00", "end": None}
    writer = ResultsWriter(run_dir, run_info)
    assert load_results(run_dir) == {"schema": SCHEMA, "run": run_info, "cells": []}
    first, second = cell(), cell(transport="uds", status="failed", error="boom")
    writer.add_cell(first)
    assert load_results(run_dir)["cells"] == [first]
    first["transport"] = "mutated after handing over"
    writer.add_cell(second)
    assert [c["transport"] for c in load_results(run_dir)["cells"]] == ["tcp", "uds"]
    writer.update_run(runtime={"name": "local", "network": {"mtu": 1500}})
    assert load_results(run_dir)["run"]["runtime"] == {"name": "local", "network": {"mtu": 1500}}
    writer.finish("2025-01-01T00:05:00+00:00")
    loaded = load_results(run_dir)
    assert loaded["run"]["end"] == "2025-01-01T00:05:00+00:00" and len(loaded["cells"]) == 2
    assert loaded["run"]["id"] == "r1" and loaded["run"]["runtime"]["name"] == "local"
    assert sorted(p.name for p in run_dir.iterdir()) == [RESULTS_FILE], "temp files left over"


def test_a_bad_cell_changes_nothing(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path, {"id": "r1"})
    writer.add_cell(cell())
    before = (tmp_path / RESULTS_FILE).read_bytes()
    with pytest.raises(ValueError, match="lacks keys: notes"):
        writer.add_cell({k: v for k, v in cell().items() if k != "notes"})
    with pytest.raises(ValueError, match="not JSON serialisable"):
        writer.add_cell(cell(settings={"path": Path("/x")}))
    with pytest.raises(ValueError, match="not JSON serialisable"):
        writer.add_cell(cell(duration_s=math.nan))
    assert (tmp_path / RESULTS_FILE).read_bytes() == before
    writer.add_cell(cell(transport="uds"))
    assert [c["transport"] for c in load_results(tmp_path)["cells"]] == ["tcp", "uds"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESULTS_FILE]


WRITER_SCRIPT = """
import json, sys
from pathlib import Path
from bench.results import ResultsWriter
writer = ResultsWriter(Path(sys.argv[1]), {"id": "crash"})
for i in range(100_000):
    writer.add_cell({**json.loads(sys.argv[2]), "payload_bytes": i + 1, "settings": "x" * 200_000})
    print(i, flush=True)
"""


def test_results_survive_a_writer_killed_at_any_moment(tmp_path: Path) -> None:
    """SIGKILL a writer mid-run, again and again; results.json must always load whole."""
    rng = random.Random(7)
    template = json.dumps(cell())
    for trial in range(12):
        run_dir = tmp_path / f"t{trial}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(run_dir), template],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "0"
            time.sleep(rng.uniform(0, 0.08))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        cells = load_results(run_dir)["cells"]
        assert [c["payload_bytes"] for c in cells] == list(range(1, len(cells) + 1))
        assert all(len(c["settings"]) == 200_000 for c in cells)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"run": {}, "cells": []}', "schema is None, this ipcbench reads 'ipcbench/results@1'"),
        ('{"schema": "ipcbench/results@2", "run": {}, "cells": []}', "schema is 'ipcbench/re"),
        ('{"schema": "ipcbench/results@1", "run": {}, "cells": {}}', "needs a 'run' object"),
        ('{"schema": "ipcbench/results@1", "run": {}, "cells": [{"mode": "x"}]}', "cell 0 lacks"),
    ],
)  # fmt: skip
def test_load_results_says_what_is_wrong_in_one_line(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    if content is not None:
        (tmp_path / RESULTS_FILE).write_text(content)
    with pytest.raises(ResultsError) as info:
        load_results(tmp_path)
    message = str(info.value)
    assert expected in message
    assert str(tmp_path / RESULTS_FILE) in message and "\n" not in message


def test_writer_refuses_what_load_results_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad run info: planned_cells must be an integer"):
        ResultsWriter(tmp_path, {"id": "r1", "planned_cells": -1})
    writer = ResultsWriter(tmp_path, {"id": "r1", "planned_cells": 3})
    before = (tmp_path / RESULTS_FILE).read_bytes()
    with pytest.raises(ValueError, match=r"bad cell: latency_us\.p50 must be a finite number"):
        writer.add_cell(cell(latency_us={**cell()["latency_us"], "p50": -1.0}))
    with pytest.raises(ValueError, match="bad run info: interrupted must be an object"):
        writer.update_run(interrupted="yes")
    assert (tmp_path / RESULTS_FILE).read_bytes() == before


def test_mark_interrupted_records_why_and_when_and_leaves_end_null(tmp_path: Path) -> None:
    info = {"id": "r1", "start": "2025-01-01T00:00:00+00:00", "end": None, "planned_cells": 4,
            "interrupted": None}  # fmt: skip
    writer = ResultsWriter(tmp_path, info)
    writer.add_cell(cell())
    writer.mark_interrupted("stopped by SIGINT", "2025-01-01T00:01:00+00:00")
    run = load_results(tmp_path)["run"]
    assert run["interrupted"] == {"reason": "stopped by SIGINT", "at": "2025-01-01T00:01:00+00:00"}
    assert run["end"] is None and run["planned_cells"] == 4 and run["id"] == "r1"


@pytest.mark.parametrize("umask", [0o077, 0o000, 0o022])
def test_results_and_csv_are_0644_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        writer = ResultsWriter(tmp_path, {"id": "r1"})
        writer.add_cell(cell())
        write_csv(load_results(tmp_path), tmp_path / "results.csv")
    finally:
        os.umask(old)
    for name in (RESULTS_FILE, "results.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


# --- CSV -----------------------------------------------------------------------


def test_csv_has_one_flat_row_per_cell(tmp_path: Path) -> None:
    latency = cell(variant="nodelay")
    throughput = cell(mode="throughput", latency_us=None,
                      throughput={"msgs_per_s": 123456.0, "bytes_per_s": 1.2e8})  # fmt: skip
    failed = cell(status="failed", error="TransportTimeout: no reply\nwithin 5 s", messages=None,
                  latency_us=None, cpu_us_per_msg={"client": None, "server": 3.5})  # fmt: skip
    path = tmp_path / "results.csv"
    write_csv({"schema": SCHEMA, "run": {}, "cells": [latency, throughput, failed]}, path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 3
    lat, tput, fail = rows
    assert lat["variant"] == "nodelay" and lat["lat_p50_us"] == "30.2"
    assert lat["lat_p999_us"] == "60.25" and lat["lat_count"] == "5000"
    assert lat["msgs_per_s"] == "" and lat["lost"] == "0" and lat["messages_sent"] == "5000"
    assert lat["cpu_us_per_msg_client"] == "12.3" and lat["cpu_us_per_msg_server"] == "11.0"
    assert tput["variant"] == "" and tput["lat_p50_us"] == "" and tput["msgs_per_s"] == "123456.0"
    assert float(tput["bytes_per_s"]) == 1.2e8
    assert fail["status"] == "failed" and fail["error"] == "TransportTimeout: no reply\nwithin 5 s"
    assert fail["messages_sent"] == "" and fail["lat_mean_us"] == "" and fail["lost"] == ""
    assert fail["cpu_us_per_msg_client"] == "" and fail["cpu_us_per_msg_server"] == "3.5"
