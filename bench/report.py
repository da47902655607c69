"""Turn a run directory's ``results.json`` into ``results.csv``, ``report.md`` and charts.

Numbers are shown to three significant digits; latency in microseconds,
throughput in messages per second and MB/s with MB = 10^6 bytes. The plain
reading compares transports *within this run*; it never states absolutes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import charts, report_header
from bench.reading import MODES, Cell, Grid, fmt3, fmt_size, plain_reading, row_label
from bench.results import load_results, write_atomic, write_csv
from bench.wording import plural


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows), ""]


Show = Callable[[dict[str, Any]], str]
Number = Callable[[dict[str, Any]], float]


def _entry(grid: Grid, row: str, size: int, show: Show) -> str:
    """The shown metric of an ok cell, else the cell's status, or a dash if it did not run."""
    metric = grid.metric(row, size)
    if metric is not None:
        return show(metric)
    cell = grid.cells.get((row, size))
    return "—" if cell is None else str(cell["status"])


def _grid_table(grid: Grid, what: str, show: Show) -> list[str]:
    header = ["transport", *(f"{fmt_size(s)} {what}" for s in grid.sizes)]
    return _table(header, [[r, *(_entry(grid, r, s, show) for s in grid.sizes)] for r in grid.rows])


CPU_CAPTION = (
    "CPU time per message, µs (client + server, plus any service container the strategy needs):"
)


def _cpu_table(grid: Grid) -> list[str]:
    def show(row: str, size: int) -> str:
        if grid.cpu_total(row, size) is None:
            return "—"
        cpu = grid.cells[(row, size)]["cpu_us_per_msg"]
        others = [f" + {fmt3(v)} {role}" for role, v in cpu.items()
                  if role not in ("client", "server") and v is not None]  # fmt: skip
        return f"{fmt3(cpu['client'])} + {fmt3(cpu['server'])}{''.join(others)}"

    header = ["transport", *(f"{fmt_size(s)} client + server (+ service)" for s in grid.sizes)]
    return _table(header, [[r, *(show(r, s) for s in grid.sizes)] for r in grid.rows])


def _samples_phrase(grid: Grid) -> str:
    counts = sorted(c["latency_us"]["count"] for c in grid.ok_cells())
    if counts[0] == counts[-1]:
        return f"each cell holds {plural(counts[0], 'sample')}"
    return f"cells hold {counts[0]:,} to {counts[-1]:,} samples"


def _latency_section(grid: Grid, chart: Path | None) -> list[str]:
    out = ["## Latency", ""]
    if not grid.ok_cells():
        return [*out, "No latency cell succeeded, so there is no latency table or chart.", ""]
    out += [
        "Latency is the round-trip time (client sends, server echoes, client receives), "
        f"measured with a monotonic clock; {_samples_phrase(grid)}. "
        "Entries are p50 / p99 in µs.",
        "",
        *_grid_table(grid, "p50 / p99 µs", lambda m: f"{fmt3(m['p50'])} / {fmt3(m['p99'])}"),
        CPU_CAPTION,
        "",
        *_cpu_table(grid),
    ]
    return [*out, f"![latency]({chart.name})", ""] if chart else out


def _throughput_section(grid: Grid, chart: Path | None) -> list[str]:
    out = ["## Throughput", ""]
    if not grid.ok_cells():
        return [*out, "No throughput cell succeeded, so there is no throughput table or chart.", ""]
    out += [
        "One-way stream from client to server. Entries are messages/s / MB/s (MB = 10^6 bytes).",
        "",
        *_grid_table(
            grid,
            "msg/s / MB/s",
            lambda m: f"{fmt3(m['msgs_per_s'])} / {fmt3(m['bytes_per_s'] / 1e6)}",
        ),
        CPU_CAPTION,
        "",
        *_cpu_table(grid),
    ]
    return [*out, f"![throughput]({chart.name})", ""] if chart else out


INTEGRITY = ("lost", "duplicated", "reordered", "corrupt")
ERROR_CHARS = 400


def _integrity_section(cells: Sequence[Cell]) -> list[str]:
    """Integrity of the cells that counted messages; a cell that did not says nothing."""
    out = ["## Integrity", ""]
    counted = [c for c in cells if c["messages"] is not None]
    if not counted:
        return [*out, "No cell counted messages, so there is nothing to say about integrity.", ""]
    bad = [c for c in counted if any(c["messages"].get(k) for k in INTEGRITY)]
    if not bad:
        uncounted = len(cells) - len(counted)
        others = f"; {plural(uncounted, 'other cell')} counted none" if uncounted else ""
        return [
            *out,
            "No cell lost, duplicated, reordered or corrupted a message "
            f"({plural(len(counted), 'cell')} counted messages{others}).",
            "",
        ]
    columns = ["transport", "mode", "payload", "status", "sent", "received", *INTEGRITY]
    rows = [
        [row_label(c), c["mode"], fmt_size(c["payload_bytes"]), c["status"],
         *(str(c["messages"].get(k, "")) for k in ("sent", "received", *INTEGRITY))]
        for c in bad
    ]  # fmt: skip
    return [*out, *_table(columns, rows)]


def _failed_section(cells: Sequence[Cell]) -> list[str]:
    failed = [c for c in cells if c["status"] == "failed"]
    out = ["## Failed cells", ""]
    if not failed:
        return [*out, "No cell failed.", ""]
    for c in failed:
        error = " ".join(str(c["error"] or "no error recorded").split())
        if len(error) > ERROR_CHARS:  # errors may carry container log tails
            error = error[:ERROR_CHARS] + " … (full text in results.json)"
        out.append(f"- {row_label(c)}, {c['mode']}, {fmt_size(c['payload_bytes'])}: {error}")
    return [*out, ""]


def _notes_section(cells: Sequence[Cell]) -> list[str]:
    noted = [(c, n) for c in cells for n in c["notes"] or ()]
    if not noted:
        return []
    lines = [
        f"- {row_label(c)}, {c['mode']}, {fmt_size(c['payload_bytes'])}: {n}" for c, n in noted
    ]
    return ["## Notes", "", *lines, ""]


def render_markdown(results: Mapping[str, Any], chart_paths: Mapping[str, Path | None]) -> str:
    """The text of ``report.md``; ``chart_paths`` maps a mode to its chart, None if skipped."""
    cells = results["cells"]
    grids = {mode: Grid.of(cells, mode) for mode in MODES}
    lines = [
        *report_header.header(results),
        "## Plain reading",
        "",
        *plain_reading(grids, cells, host_warning=report_header.busy_host(results["run"])),
        "",
        *_latency_section(grids["latency"], chart_paths.get("latency")),
        *_throughput_section(grids["throughput"], chart_paths.get("throughput")),
        *_integrity_section(cells),
        *_failed_section(cells),
        *_notes_section(cells),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _maybe(number: Number, metric: dict[str, Any] | None) -> float | None:
    return None if metric is None else number(metric)


def _series(grid: Grid, value: Number, upper: Number | None = None) -> list[charts.Series]:
    """One chart series per row; sizes without an ok cell get no bar."""
    out = []
    for row in grid.rows:
        metrics = [grid.metric(row, size) for size in grid.sizes]
        cells = [grid.cells.get((row, size)) for size in grid.sizes]
        uppers = None if upper is None else tuple(_maybe(upper, m) for m in metrics)
        out.append(
            charts.Series(
                label=row,
                values=tuple(_maybe(value, m) for m in metrics),
                failed=tuple(c is not None and c["status"] == "failed" for c in cells),
                upper=uppers,
            )
        )
    return out


def _charts(run_dir: Path, grids: Mapping[str, Grid], run_id: str) -> dict[str, Path | None]:
    """Draw each mode's chart, or remove a stale one when the mode has no ok cell."""
    lat, tput = grids["latency"], grids["throughput"]
    paths: dict[str, Path | None] = {"latency": None, "throughput": None}
    if lat.ok_cells():
        paths["latency"] = charts.latency_chart(
            run_dir / "latency.png",
            sizes=[fmt_size(s) for s in lat.sizes],
            series=_series(lat, lambda m: m["p50"], lambda m: m["p99"]),
            title=f"Round-trip latency by payload size — run {run_id}",
        )
    if tput.ok_cells():
        paths["throughput"] = charts.throughput_chart(
            run_dir / "throughput.png",
            sizes=[fmt_size(s) for s in tput.sizes],
            msgs=_series(tput, lambda m: m["msgs_per_s"]),
            mbytes=_series(tput, lambda m: m["bytes_per_s"] / 1e6),
            title=f"One-way throughput by payload size — run {run_id}",
        )
    for mode, path in paths.items():
        if path is None:
            # A chart left from an earlier rendering would contradict this report.
            (run_dir / f"{mode}.png").unlink(missing_ok=True)
    return paths


def render_report(run_dir: Path) -> list[Path]:
    """Write ``results.csv``, ``report.md`` and the charts of ``run_dir``; return their paths.

    Raises :class:`bench.results.ResultsError` if ``results.json`` is unusable.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    csv_path, md_path = run_dir / "results.csv", run_dir / "report.md"
    write_csv(results, csv_path)
    grids = {mode: Grid.of(results["cells"], mode) for mode in MODES}
    chart_paths = _charts(run_dir, grids, str(results["run"].get("id", "unknown")))
    write_atomic(md_path, render_markdown(results, chart_paths))
    return [csv_path, md_path, *(p for p in chart_paths.values() if p is not None)]
