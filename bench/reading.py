"""Reading a run's cells: arranged by transport and size, formatted, and put into words.

The plain reading compares transports *within one run* (ratios of numbers
measured side by side on one host); it never states absolute truths, and it
names no winner between figures within 10% of each other (see
:mod:`bench.wording`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.wording import Wording, compare, plural

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
        """CPU µs per message of an ok cell over every container that took part.

        Client and server, plus the service containers (a broker, a database)
        the strategy needs: their cost is part of the strategy's cost.
        """
        cell = self.cells.get((row, size))
        cpu = cell["cpu_us_per_msg"] if cell and self.metric(row, size) else None
        if not cpu or cpu.get("client") is None or cpu.get("server") is None:
            return None
        return float(sum(v for v in cpu.values() if v is not None))

    def ok_cells(self) -> list[Cell]:
        return [c for (r, s), c in self.cells.items() if self.metric(r, s) is not None]

    def ranked(
        self, size: int, key: Callable[[dict[str, Any]], float], *, highest_first: bool = False
    ) -> list[tuple[float, str, dict[str, Any]]]:
        """(key value, row, metric) of every ok cell at ``size``, smallest key first."""
        found = ((self.metric(r, size), r) for r in self.rows)
        ranked = sorted(((key(m), r, m) for m, r in found if m is not None), key=lambda t: t[0])
        return ranked[::-1] if highest_first else ranked


def _us(value: float) -> str:
    return f"{fmt3(value)} µs"


def _mb(value: float) -> str:
    return fmt3(value / 1e6)


LATENCY = Wording(
    lead=lambda r, v: f"{r} has the fastest median round trip ({_us(v)})",
    what="median round trip",
    number=fmt3,
    unit="µs",
    say=lambda x, v: f"takes {x} as long ({_us(v)})",
    last="slowest",
)
CPU = Wording(
    lead=lambda r, v: f"CPU time per message (all containers) is lowest for {r} ({_us(v)})",
    what="CPU time per message, all containers",
    number=fmt3,
    unit="µs",
    say=lambda x, v: f"uses {x} as much ({_us(v)})",
    last="highest",
)


def _throughput_wording(head: str) -> Wording:
    return Wording(
        lead=lambda r, _v: f"{r} has the highest throughput ({head})",
        what="throughput",
        number=_mb,
        unit="MB/s",
        say=lambda x, v: f"reaches {x} of it ({_mb(v)} MB/s)",
        last="lowest",
    )


def _latency_lines(grid: Grid) -> list[str]:
    lines = []
    for size in grid.sizes:
        ranked = [(v, r) for v, r, _ in grid.ranked(size, lambda m: m["p50"])]
        at = f"At {fmt_size(size)}"
        if len(ranked) == 1:
            lines.append(f"{at}, only {ranked[0][1]} has a latency result: median round trip "
                         f"{_us(ranked[0][0])}.")  # fmt: skip
        elif ranked:
            lines.append(f"{at}, {compare(ranked, LATENCY)}.")
    tails = [(m["p99"] / m["p50"], r, s, m) for (r, s) in grid.cells
             if (m := grid.metric(r, s)) is not None and m["p50"] > 0]  # fmt: skip
    if tails:
        ratio, r, s, m = max(tails, key=lambda t: t[0])
        lines.append(
            f"The widest tail relative to its median is {r} at {fmt_size(s)}: p99 is "
            f"{ratio:.3g}× p50 ({_us(m['p99'])} vs {_us(m['p50'])})."
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
        head = f"{_mb(best)} MB/s, {fmt3(top['msgs_per_s'])} msg/s"
        if len(ranked) == 1:
            lines.append(f"At {fmt_size(size)}, only {who} has a throughput result: {head}.")
            continue
        wording = _throughput_wording(head)
        lines.append(f"At {fmt_size(size)}, {compare([(v, r) for v, r, _ in ranked], wording)}.")
    return lines


def _cpu_line(grid: Grid) -> list[str]:
    """One sentence for the largest size at which two or more transports have CPU figures."""
    for size in reversed(grid.sizes):
        found = [(cpu, r) for r in grid.rows if (cpu := grid.cpu_total(r, size)) is not None]
        if len(found) >= 2:
            ranked = sorted(found, key=lambda t: t[0])
            return [f"In {grid.mode} mode at {fmt_size(size)}, {compare(ranked, CPU)}."]
    return []


def plain_reading(
    grids: Mapping[str, Grid], cells: Sequence[Cell], *, host_warning: str | None = None
) -> list[str]:
    """Markdown bullet lines saying what this run's numbers show, relative to each other.

    ``host_warning``, if given, comes first: it says why absolute figures
    of this run are not to be trusted (a busy host, say).
    """
    lat, tput = grids["latency"], grids["throughput"]
    lines = [
        *([host_warning] if host_warning else []),
        *_latency_lines(lat),
        *_throughput_lines(tput),
        *_cpu_line(lat),
        *_cpu_line(tput),
    ]
    ok_rows = {row_label(c) for g in (lat, tput) for c in g.ok_cells()}
    if not ok_rows:
        lines.append("No cell succeeded, so there is nothing to compare; see Failed cells.")
    elif len(ok_rows) == 1:
        lines.append(f"Only {ok_rows.pop()} has results, so this run compares no transports.")
    failed = sum(c["status"] == "failed" for c in cells)
    if failed:
        lines.append(
            f"{plural(failed, 'cell')} failed (see Failed cells); the comparisons use only cells "
            "that succeeded."
        )
    if len(ok_rows) > 1:
        lines.append(
            "These ratios describe this run on this host; gaps under 10% are called ties, "
            "since noise alone moves figures that much. Repeat the run before relying on them."
        )
    return [f"- {line}" for line in lines]
