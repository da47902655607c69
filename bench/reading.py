"""Reading a run's cells: arranged by transport and size, formatted, and put into words.

The plain reading compares transports *within one run* (ratios of numbers
measured side by side on one host); it never states absolute truths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Cell = dict[str, Any]
MODES = ("latency", "throughput")
METRIC = {"latency": "latency_us", "throughput": "throughput"}


def fmt3(value: float) -> str:
    """Three significant digits, thousands separated, never scientific: 0.0123, 45.6, 12,300."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    rounded = float(f"{value:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def fmt_size(n: int) -> str:
    """Payload sizes as people say them: 64 B, 1 KiB, 1 MiB (binary units)."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def row_label(cell: Cell) -> str:
    """``transport`` or ``transport:variant``: one table row, one chart series."""
    variant = cell["variant"]
    return str(cell["transport"]) if variant is None else f"{cell['transport']}:{variant}"


@dataclass(frozen=True)
class Grid:
    """The cells of one mode, indexed by row label and payload size."""

    mode: str
    rows: tuple[str, ...]
    sizes: tuple[int, ...]
    cells: Mapping[tuple[str, int], Cell]

    @classmethod
    def of(cls, cells: Sequence[Cell], mode: str) -> Grid:
        mine = [c for c in cells if c["mode"] == mode]
        index: dict[tuple[str, int], Cell] = {}
        for c in mine:
            key = (row_label(c), c["payload_bytes"])
            # Repetitions are not aggregated yet: the first ok cell of a key wins.
            if key not in index or (index[key]["status"] != "ok" and c["status"] == "ok"):
                index[key] = c
        rows = tuple(dict.fromkeys(row_label(c) for c in mine))  # in scenario order
        return cls(mode, rows, tuple(sorted({c["payload_bytes"] for c in mine})), index)

    def metric(self, row: str, size: int) -> dict[str, Any] | None:
        """The mode's numbers (``latency_us`` or ``throughput``) of an ok cell, else None."""
        cell = self.cells.get((row, size))
        if cell is None or cell["status"] != "ok":
            return None
        metric: dict[str, Any] | None = cell[METRIC[self.mode]]
        return metric

    def cpu_total(self, row: str, size: int) -> float | None:
        """Client plus server CPU µs per message of an ok cell, if both were measured."""
        cell = self.cells.get((row, size))
        cpu = cell["cpu_us_per_msg"] if cell and self.metric(row, size) else None
        if not cpu or cpu.get("client") is None or cpu.get("server") is None:
            return None
        return float(cpu["client"] + cpu["server"])

    def ok_cells(self) -> list[Cell]:
        return [c for (r, s), c in self.cells.items() if self.metric(r, s) is not None]

    def ranked(
        self, size: int, key: Callable[[dict[str, Any]], float], *, highest_first: bool = False
    ) -> list[tuple[float, str, dict[str, Any]]]:
        """(key value, row, metric) of every ok cell at ``size``, smallest key first."""
        found = ((self.metric(r, size), r) for r in self.rows)
        ranked = sorted(((key(m), r, m) for m, r in found if m is not None), key=lambda t: t[0])
        return ranked[::-1] if highest_first else ranked


def _times(value: float, base: float) -> str:
    return f"{value / base:.3g}×" if base > 0 else "n/a×"


Say = Callable[[str, float], str]


def _versus(ranked: Sequence[tuple[float, str]], say: Say, last: str) -> str:
    """The runner-up and the last against the leader; a long field's middle is left to the table.

    ``say(ratio, value)`` words one comparison, e.g. "takes 1.6× as long (37.0 µs)".
    """
    best = ranked[0][0]
    (v1, r1), (vn, rn) = ranked[1], ranked[-1]
    if len(ranked) == 2:
        return f"{r1} {say(_times(v1, best), v1)}"
    return (
        f"the next, {r1}, {say(_times(v1, best), v1)}; "
        f"the {last} of {len(ranked)}, {rn}, {say(_times(vn, best), vn)}"
    )


def _latency_lines(grid: Grid) -> list[str]:
    lines = []
    for size in grid.sizes:
        ranked = [(v, r) for v, r, _ in grid.ranked(size, lambda m: m["p50"])]
        at = f"At {fmt_size(size)}"
        if len(ranked) == 1:
            lines.append(f"{at}, only {ranked[0][1]} has a latency result: median round trip "
                         f"{fmt3(ranked[0][0])} µs.")  # fmt: skip
        elif ranked:
            versus = _versus(ranked, lambda x, v: f"takes {x} as long ({fmt3(v)} µs)", "slowest")
            lines.append(f"{at}, {ranked[0][1]} has the fastest median round trip "
                         f"({fmt3(ranked[0][0])} µs); {versus}.")  # fmt: skip
    tails = [(m["p99"] / m["p50"], r, s, m) for (r, s) in grid.cells
             if (m := grid.metric(r, s)) is not None and m["p50"] > 0]  # fmt: skip
    if tails:
        ratio, r, s, m = max(tails, key=lambda t: t[0])
        lines.append(
            f"The widest tail relative to its median is {r} at {fmt_size(s)}: p99 is "
            f"{ratio:.3g}× p50 ({fmt3(m['p99'])} µs vs {fmt3(m['p50'])} µs)."
        )
    return lines


def _throughput_lines(grid: Grid) -> list[str]:
    lines = []
    for size in grid.sizes:
        # At one payload size, bytes/s and msgs/s rank alike.
        ranked = grid.ranked(size, lambda m: m["bytes_per_s"], highest_first=True)
        if not ranked:
            continue
        best, who, top = ranked[0]
        head = f"{fmt3(best / 1e6)} MB/s, {fmt3(top['msgs_per_s'])} msg/s"
        if len(ranked) == 1:
            lines.append(f"At {fmt_size(size)}, only {who} has a throughput result: {head}.")
            continue
        pairs = [(v, r) for v, r, _ in ranked]
        versus = _versus(pairs, lambda x, v: f"reaches {x} of it ({fmt3(v / 1e6)} MB/s)", "lowest")
        lines.append(f"At {fmt_size(size)}, {who} has the highest throughput ({head}); {versus}.")
    return lines


def _cpu_line(grid: Grid) -> list[str]:
    """One sentence for the largest size at which two or more transports have CPU figures."""
    for size in reversed(grid.sizes):
        found = [(cpu, r) for r in grid.rows if (cpu := grid.cpu_total(r, size)) is not None]
        if len(found) >= 2:
            ranked = sorted(found, key=lambda t: t[0])
            versus = _versus(ranked, lambda x, v: f"uses {x} as much ({fmt3(v)} µs)", "highest")
            return [
                f"In {grid.mode} mode at {fmt_size(size)}, CPU time per message (client + server) "
                f"is lowest for {ranked[0][1]} ({fmt3(ranked[0][0])} µs); {versus}."
            ]
    return []


def plain_reading(grids: Mapping[str, Grid], cells: Sequence[Cell]) -> list[str]:
    """Markdown bullet lines saying what this run's numbers show, relative to each other."""
    lat, tput = grids["latency"], grids["throughput"]
    lines = [*_latency_lines(lat), *_throughput_lines(tput), *_cpu_line(lat), *_cpu_line(tput)]
    ok_rows = {row_label(c) for g in (lat, tput) for c in g.ok_cells()}
    if not ok_rows:
        lines.append("No cell succeeded, so there is nothing to compare; see Failed cells.")
    elif len(ok_rows) == 1:
        lines.append(f"Only {ok_rows.pop()} has results, so this run compares no transports.")
    failed = sum(c["status"] == "failed" for c in cells)
    if failed:
        cells_word = "cell" if failed == 1 else "cells"
        lines.append(
            f"{failed} {cells_word} failed (see Failed cells); the comparisons use only cells "
            "that succeeded."
        )
    if len(ok_rows) > 1:
        lines.append(
            "These ratios describe this run on this host; repeat the run before relying on "
            "small differences."
        )
    return [f"- {line}" for line in lines]
