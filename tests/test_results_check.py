"""What load_results refuses in a cell or a run, and how it says so; what it lets grow."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.results import RESULTS_FILE, SCHEMA, ResultsError, load_results
from tests.test_results import cell

BAD_CELLS = [
    ({"latency_us": "x"}, 'latency_us must be an object or null, found "x"'),
    ({"payload_bytes": "big"}, 'payload_bytes must be an integer ≥ 1, found "big"'),
    ({"payload_bytes": 0}, "payload_bytes must be an integer ≥ 1, found 0"),
    ({"payload_bytes": True}, "payload_bytes must be an integer ≥ 1, found true"),
    ({"transport": None}, "transport must be a string, found null"),
    ({"variant": 3}, "variant must be a string or null, found 3"),
    ({"mode": "both"}, 'mode must be "latency" or "throughput", found "both"'),
    ({"status": "weird"}, 'status must be "ok" or "failed", found "weird"'),
    ({"notes": "one"}, 'notes must be a list or null, found "one"'),
    ({"messages": {**cell()["messages"], "lost": -1}}, "messages.lost must be an integer ≥ 0"),
    ({"messages": {**cell()["messages"], "sent": 1.5}}, "messages.sent must be an integer ≥ 0"),
    ({"messages": {"sent": 5}}, "messages.received is missing"),
    ({"latency_us": {**cell()["latency_us"], "p50": None}},
     "latency_us.p50 must be a finite number ≥ 0, found null"),
    ({"latency_us": {**cell()["latency_us"], "p50": math.nan}},
     "latency_us.p50 must be a finite number ≥ 0, found NaN"),
    ({"latency_us": {**cell()["latency_us"], "p99": math.inf}},
     "latency_us.p99 must be a finite number ≥ 0, found Infinity"),
    ({"latency_us": {**cell()["latency_us"], "count": 2.5}},
     "latency_us.count must be an integer ≥ 0, found 2.5"),
    ({"mode": "throughput", "throughput": {"msgs_per_s": -5.0, "bytes_per_s": 1.0}},
     "throughput.msgs_per_s must be a finite number ≥ 0, found -5.0"),
    ({"throughput": {"msgs_per_s": 5.0, "bytes_per_s": 1.0, "extra": "x"}},
     'throughput.extra must be a finite number ≥ 0, found "x"'),
    ({"cpu_us_per_msg": {"client": "fast", "server": 1.0}},
     'cpu_us_per_msg.client must be a finite number ≥ 0 or null, found "fast"'),
    ({"cpu_us_per_msg": {"client": 1.0, "server": 1.0, "broker": -2}},
     "cpu_us_per_msg.broker must be a finite number ≥ 0 or null, found -2"),
    ({"cpu_us_per_msg": [1.0]}, "cpu_us_per_msg must be an object or null, found [1.0]"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "expected"), BAD_CELLS)
def test_load_results_names_the_cell_and_field_of_a_bad_value(
    tmp_path: Path, bad: dict[str, Any], expected: str
) -> None:
    doc = {"schema": SCHEMA, "run": {}, "cells": [cell(), cell(), cell(), cell(**bad)]}
    (tmp_path / RESULTS_FILE).write_text(json.dumps(doc))  # json writes NaN as NaN
    with pytest.raises(ResultsError) as info:
        load_results(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / RESULTS_FILE}: cell 3: {expected}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"end": 5}, "end must be a string or null, found 5"),
        ({"planned_cells": "many"}, 'planned_cells must be an integer ≥ 0 or null, found "many"'),
        ({"interrupted": {"reason": "SIGINT"}}, "interrupted.at must be a string, found null"),
        ({"host": {"cores": 0}}, "host.cores must be an integer ≥ 1 or null, found 0"),
        ({"host_load": {"start": [1.0, 2.0]}}, "host_load.start must be a list of 3 load"),
        ({"host_load": {"end": [1.0, "x", 2.0]}}, "host_load.end[1] must be a finite number"),
        ({"versions": "3.11"}, 'versions must be an object or null, found "3.11"'),
    ],
)  # fmt: skip
def test_load_results_names_a_bad_run_field(
    tmp_path: Path, run: dict[str, Any], expected: str
) -> None:
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"schema": SCHEMA, "run": run, "cells": []}))
    with pytest.raises(ResultsError) as info:
        load_results(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / RESULTS_FILE}: run: {expected}")


def test_load_results_accepts_keys_it_does_not_know(tmp_path: Path) -> None:
    grown = cell(
        messages_server={"sent": 1, "received": 1, "lost": 0, "duplicated": 0, "reordered": 0,
                         "corrupt": 0},
        repeat=2, notes=None,
        latency_us={**cell()["latency_us"], "histogram": [[1, 2]]},
        cpu_us_per_msg={"client": 1.0, "server": None, "broker": 0},
    )  # fmt: skip
    failed = cell(status="failed", variant="v", messages=None, latency_us=None,
                  cpu_us_per_msg=None, mode="throughput", payload_bytes=1)  # fmt: skip
    run = {"interrupted": None, "planned_cells": 0, "host_load": {"start": [0, 0.5, 1.25]},
           "host": {"cores": None}, "future": {"anything": [1]}}  # fmt: skip
    doc = {"schema": SCHEMA, "run": run, "cells": [grown, failed]}
    (tmp_path / RESULTS_FILE).write_text(json.dumps(doc))
    assert load_results(tmp_path) == doc
