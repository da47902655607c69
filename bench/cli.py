"""The ``ipcbench`` command line: run, list, report, doctor.

Expected errors become one line on stderr and an exit status: 0 all cells
ok, 1 some cell failed (the others still ran and were written), 2 bad input
or an unusable machine, 3 an internal error (a bug: please report it), 128+N
stopped by signal N (130 for Ctrl-C). A traceback reaching a user is a bug.
Heavy modules are imported late, so that even an early Ctrl-C is handled.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import cli as runtime_cli

if TYPE_CHECKING:
    from bench.scenario import Cell

EXIT_OK, EXIT_CELL_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_SIGNAL_BASE = 128


class UsageError(Exception):
    """Bad input: one line, exit status 2."""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ipcbench", description="Measure how containers talk.")
    ap.add_argument("-v", "--verbose", action="store_true", help="show more while running")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure the selected cells and write a report")
    add_selection(run)
    run.add_argument("--out", help="run folder (default: results/<run id> in the checkout)")
    lst = sub.add_parser("list", help="transports, variants, modes, and the cells a selection runs")
    add_selection(lst)
    rep = sub.add_parser("report", help="re-render a run folder's report from its results")
    rep.add_argument("dir", type=Path)
    sub.add_parser("doctor", help="check this machine's prerequisites")
    sub.add_parser("gc", help="remove what runs that died (e.g. by SIGKILL) left behind")
    runtime_cli.add_commands(sub)
    return ap


def add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", nargs="?", type=Path, help="a scenario TOML file")
    p.add_argument("--transport", action="append", metavar="NAME[:VARIANT]", default=[])
    p.add_argument("--size", action="append", metavar="BYTES", default=[])
    p.add_argument("--mode", action="append", choices=("latency", "throughput"), default=[])
    p.add_argument("--messages", type=int, metavar="N", help="measured messages per cell")
    p.add_argument("--quick", action="store_true", help="one payload size, fewer messages")
    p.add_argument(
        "--max-seconds",
        type=float,
        metavar="S",
        help="end each cell's measured phase after S seconds (0: no limit)",
    )


def scenario_from(args: argparse.Namespace) -> Any:
    from bench import scenario

    return scenario.build(
        file=args.scenario,
        transports_=args.transport,
        sizes=args.size,
        modes=args.mode,
        messages=args.messages,
        quick=args.quick,
        max_seconds=args.max_seconds,
    )


def cmd_list(args: argparse.Namespace) -> int:
    import transports
    from transports.base import MODES

    print("transports:")
    for name in transports.names():
        cls = transports.get(name)
        for variant in cls.variants or (None,):
            label = f"{name}:{variant}" if variant else name
            print(f"  {label:<18} {cls.summary}")
            for mode in MODES:
                print(f"  {'':<18}   {mode:<10} {cls.how(variant, mode) or 'not supported'}")
    print(f"modes: {', '.join(MODES)}")
    cells = scenario_from(args).cells()
    total = sum(c.estimate_s() for c in cells)
    for note in scenario_from(args).skipped():
        print(f"note: {note}")
    print(f"\n{plural(len(cells), 'cell')}, about {total:.0f} s:")
    for c in cells:
        print(
            f"  {c.label:<32} {c.messages} messages (+{c.warmup} warm-up)  ~{c.estimate_s():.1f} s"
        )
    return EXIT_OK


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run import check_out, run

    scenario = scenario_from(args)
    if os.geteuid() != 0:
        raise UsageError("ipcbench run needs root (namespaces, cgroups): try sudo")
    cells = scenario.cells()
    if args.out is not None and not args.out.strip():
        raise UsageError("--out is empty: name a folder")
    out = Path(args.out) if args.out is not None else None
    check_out(out)
    print(f"ipcbench: {plural(len(cells), 'cell')}", flush=True)
    for note in scenario.skipped():
        print(f"ipcbench: {note}", flush=True)
    t0 = time.monotonic()
    run_dir, results = run(scenario, out, on_cell=lambda i, c, r: print_cell(i, len(cells), c, r))
    failed = [r for r in results if r["status"] != "ok"]
    print(
        f"\n{len(results) - len(failed)} ok, {len(failed)} failed in {time.monotonic() - t0:.0f} s"
    )
    print(f"report: {run_dir / 'report.md'}")
    return EXIT_CELL_FAILED if failed else EXIT_OK


def print_cell(index: int, total: int, cell: Cell, result: dict[str, Any]) -> None:
    counter = f"[{index + 1}/{total}]"
    head = f"{counter:>{2 * len(str(total)) + 3}} {cell.label:<30}"
    if result["status"] != "ok":
        print(f"{head} FAILED: {result['error']}", flush=True)
        return
    cpu = result["cpu_us_per_msg"] or {}
    cpu_text = f"cpu {cpu.get('client', 0):.1f}+{cpu.get('server', 0):.1f} us/msg"
    if result["latency_us"]:
        lat = result["latency_us"]
        print(
            f"{head} rtt p50 {lat['p50']:.1f} us  p99 {lat['p99']:.1f} us  {cpu_text}", flush=True
        )
    elif result["throughput"]:
        t = result["throughput"]
        print(
            f"{head} {t['msgs_per_s']:,.0f} msg/s  {t['bytes_per_s'] / 1e6:.1f} MB/s  {cpu_text}",
            flush=True,
        )


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import render_report

    for path in render_report(args.dir):
        print(path)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.doctor import checks

    worst = EXIT_OK
    for ok, name, verdict in checks():
        print(f"{'ok  ' if ok else 'FAIL'} {name:<22} {verdict}")
        if not ok:
            worst = EXIT_BAD_INPUT
    return worst


def cmd_gc(args: argparse.Namespace) -> int:
    from runtime import cgroups, gc
    from runtime.local import STATE_ROOT

    if os.geteuid() != 0:
        raise UsageError("ipcbench gc needs root: try sudo")
    removed = gc.sweep(STATE_ROOT, cgroups.detect())
    for line in removed:
        print(f"removed {line}")
    print(f"gc: {len(removed)} leftovers removed" if removed else "gc: nothing to remove")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "gc": cmd_gc,
    "container": runtime_cli.dispatch,
    "image": runtime_cli.dispatch,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("pyroute2").setLevel(logging.WARNING)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("ipcbench: interrupted; what was measured is kept", file=sys.stderr)
        return EXIT_SIGNAL_BASE + 2
    except Exception as exc:
        return report_error(exc)


def report_error(exc: Exception) -> int:
    """One line for an expected error, with its exit status; a bug says it is one."""
    from bench.results import ResultsError
    from bench.run import Interrupted, OutError
    from bench.scenario import ScenarioError

    if isinstance(exc, Interrupted):
        print(f"ipcbench: {exc}; what was measured is kept", file=sys.stderr)
        return EXIT_SIGNAL_BASE + exc.signum
    if isinstance(exc, UsageError | ScenarioError | ResultsError | OutError):
        print(f"ipcbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.getLogger(__name__).debug("internal error", exc_info=exc)
    print(
        f"ipcbench: internal error: {type(exc).__name__}: {exc} (run with -v for details)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
