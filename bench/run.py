"""Run a scenario: every cell in fresh containers, results written cell by cell.

Cells run one after another on one lab network. ``results.json`` is rewritten
atomically after every cell, so a run that is interrupted (Ctrl-C, SIGTERM, a
crash) keeps what it measured; the report is rendered from whatever is there.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import hostinfo
from bench.cell import run_cell
from bench.report import render_report
from bench.results import ResultsWriter
from bench.scenario import Cell, Scenario
from runtime.local import LocalRuntime

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """The run was stopped by a signal; what was measured is kept."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception so that every cleanup path runs."""

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_info(rt: LocalRuntime, scenario: Scenario) -> dict[str, Any]:
    return {
        "id": rt.run_id,
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "end": None,
        "runtime": rt.describe(),
        "host": hostinfo.host(rt.layout.describe()),
        "versions": hostinfo.versions(),
        "commit": hostinfo.commit(),
        "scenario": scenario.as_dict(),
    }


def run(
    scenario: Scenario,
    out: Path | None,
    *,
    on_cell: Callable[[int, Cell, dict[str, Any]], None] | None = None,
    faults: dict[str, list[int]] | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Measure every cell of ``scenario``; returns the run folder and the cells."""
    cells_done: list[dict[str, Any]] = []
    with terminate_as_interrupt(), LocalRuntime() as rt:
        run_dir = out or Path("results") / rt.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        info = run_info(rt, scenario)
        writer = ResultsWriter(run_dir, info)
        try:
            with rt.network() as net:
                writer.update_run(runtime={**info["runtime"], "network": net.settings()})
                for index, cell in enumerate(scenario.cells()):
                    result = run_cell(
                        rt,
                        net,
                        cell,
                        index=index,
                        op_timeout=scenario.op_timeout_s,
                        options=scenario.options.get(cell.transport, {}),
                        faults=faults,
                        logs_dir=run_dir / "logs",
                    )
                    writer.add_cell(result)
                    cells_done.append(result)
                    if on_cell:
                        on_cell(index, cell, result)
        finally:
            writer.finish(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            if cells_done:
                _render_quietly(run_dir)
    return run_dir, cells_done


def _render_quietly(run_dir: Path) -> None:
    # Called on every way out of a run: a rendering problem must not hide the
    # error that ended the run, and results.json is already safe on disk.
    try:
        render_report(run_dir)
    except Exception as exc:
        log.error("the report could not be rendered (ipcbench report %s retries): %s", run_dir, exc)
