"""Run a scenario: every cell in fresh containers, results written cell by cell.

Cells run one after another on one lab network. ``results.json`` is rewritten
atomically after every cell, so a run that is interrupted (Ctrl-C, SIGTERM, a
crash) keeps what it measured; the report is rendered from whatever is there.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import hostinfo
from bench.cell import run_cell
from bench.report import render_report
from bench.results import RESULTS_FILE, ResultsWriter
from bench.scenario import Cell, Scenario
from bench.services.set import ServiceSet, needed_services
from runtime import PROJECT_ROOT
from runtime.local import LocalRuntime

log = logging.getLogger(__name__)

DEFAULT_RESULTS = PROJECT_ROOT / "results"


class Interrupted(Exception):
    """The run was stopped by a signal; what was measured is kept."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception so that every cleanup path runs."""

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_info(rt: LocalRuntime, scenario: Scenario) -> dict[str, Any]:
    return {
        "id": rt.run_id,
        "start": now(),
        "end": None,
        "interrupted": None,
        "planned_cells": len(scenario.cells()),
        "skipped": scenario.skipped(),
        "runtime": rt.describe(),
        "host": hostinfo.host(rt.layout.describe()),
        "host_load": {"start": list(os.getloadavg()), "end": None},
        "versions": hostinfo.versions(),
        "commit": hostinfo.commit(),
        "scenario": scenario.as_dict(),
    }


class OutError(Exception):
    """The output folder cannot be used; the message says why."""


def check_out(out: Path | None) -> None:
    """Refuse an unusable ``--out`` before anything starts."""
    if out is None:
        return
    if str(out).strip() == "":
        raise OutError("--out is empty: name a folder")
    if out.exists() and not out.is_dir():
        raise OutError(f"--out {out} exists and is not a folder")
    if (out / RESULTS_FILE).exists():
        raise OutError(f"--out {out} already holds a run: choose a new folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK) or not parent.is_dir():
        raise OutError(f"cannot write to --out {out}")


def claim_out(out: Path | None, run_id: str) -> Path:
    """Create the run folder and claim it, so that a second run given it refuses."""
    run_dir = out if out is not None else DEFAULT_RESULTS / run_id
    check_out(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        os.close(os.open(run_dir / RESULTS_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise OutError(f"--out {run_dir} already holds a run: choose a new folder") from None
    except OSError as exc:
        raise OutError(f"cannot write to --out {run_dir}: {exc.strerror}") from None
    return run_dir


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
        run_dir = claim_out(out, rt.run_id)
        info = run_info(rt, scenario)
        writer = ResultsWriter(run_dir, info)
        try:
            with rt.network() as net, ServiceSet(rt, net, needed_services(scenario)) as services:
                writer.update_run(
                    runtime={**info["runtime"], "network": net.settings()},
                    services=services.settings(),
                )
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
                        services=services.started,
                        limits=scenario.limits,
                    )
                    writer.add_cell(result)
                    cells_done.append(result)
                    if on_cell:
                        on_cell(index, cell, result)
        except (Interrupted, KeyboardInterrupt) as exc:
            reason = str(exc) if isinstance(exc, Interrupted) else "stopped by SIGINT"
            writer.mark_interrupted(reason, now())
            raise
        else:
            writer.finish(now())
        finally:
            writer.update_run(host_load={**info["host_load"], "end": list(os.getloadavg())})
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
