"""The plain reading's wording: leaders, ties within 10%, ratios; number and size formats."""

from __future__ import annotations

from typing import Any

import pytest

from bench.reading import MODES, Grid, fmt3, fmt_size, plain_reading
from tests.test_report import P50, cell


def test_reading_of_a_long_field_names_leader_runner_up_and_last() -> None:
    medians = {"a": 40.0, "b": 10.0, "c": 25.0, "d": 12.0}
    cells = []
    for name, p50 in medians.items():
        c = cell("tcp", "latency", 64, cpu_us_per_msg=None)
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


def reading_of(cells: list[dict[str, Any]]) -> str:
    grids = {mode: Grid.of(cells, mode) for mode in MODES}
    return "\n".join(plain_reading(grids, cells))


def latency_cells(**p50s: float) -> list[dict[str, Any]]:
    out = []
    for name, p50 in p50s.items():
        c = cell("tcp", "latency", 64, cpu_us_per_msg=None)
        c["latency_us"] = {**c["latency_us"], "p50": p50, "p99": p50 * 2}
        out.append({**c, "transport": name})
    return out


def test_figures_within_10_percent_are_a_tie_not_a_win() -> None:
    reading = reading_of(latency_cells(tcp=31.2, uds=30.0))  # a 4% gap
    assert (
        "- At 64 B, uds and tcp are within 10% of each other on median round trip "
        "(30.0 and 31.2 µs), so neither is ahead in this run." in reading
    )
    assert "fastest" not in reading
    reading = reading_of(latency_cells(a=40.0, b=10.0, c=10.5, d=20.0))
    assert (
        "- At 64 B, b and c are within 10% of each other on median round trip "
        "(10.0 and 10.5 µs); measured against b's 10.0 µs, the next, d, takes 2× as long "
        "(20.0 µs); the slowest of 4, a, takes 4× as long (40.0 µs)." in reading
    )
    tput = [cell(t, "throughput", 64, cpu_us_per_msg=None) for t in P50]
    tput[1]["throughput"] = {"msgs_per_s": 190_000.0, "bytes_per_s": 190_000.0 * 64}
    reading = reading_of(tput)
    assert "tcp and uds are within 10% of each other on throughput (12.8 and 12.2 MB/s)" in reading
    assert "highest" not in reading
    # A 10% gap is past the line: the ratio wording stays.
    assert "tcp takes 1.1× as long (33.0 µs)" in reading_of(latency_cells(tcp=33.0, uds=30.0))
