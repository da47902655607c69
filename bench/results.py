"""The results contract: ``results.json`` in a run directory, and its CSV view.

The file is one JSON object, ``{"schema": SCHEMA, "run": {...}, "cells": [...]}``.
``run`` holds what is needed to reproduce a run and to refuse a bad
comparison (id, start, end, runtime, host, versions, commit, the effective
scenario) and how it went: ``end`` is null and ``interrupted`` is
``{"reason", "at"}`` when the run was stopped, ``planned_cells`` counts the
scenario's cells, ``host_load`` holds the 1/5/15-minute load averages at
``start`` and ``end``. Each cell holds one transport x variant x mode x
payload measurement, with every key of :data:`CELL_KEYS` present (``None``
where not applicable); :mod:`bench.results_check` states the type of each.
New keys may be added; a change to the shape of existing ones bumps the
version in :data:`SCHEMA`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.results_check import Invalid, check_cell, check_run

SCHEMA = "ipcbench/results@1"
RESULTS_FILE = "results.json"
FILE_MODE = 0o644

CELL_KEYS = frozenset(
    {
        "transport", "variant", "mode", "payload_bytes", "header_bytes", "status", "error",
        "settings", "started", "duration_s", "messages", "latency_us", "throughput",
        "cpu_us_per_msg", "notes",
    }
)  # fmt: skip

CSV_COLUMNS: tuple[str, ...] = (
    "transport", "variant", "mode", "payload_bytes", "status", "error",
    "messages_sent", "messages_received", "lost", "duplicated", "reordered", "corrupt",
    "lat_count", "lat_min_us", "lat_p50_us", "lat_p90_us", "lat_p99_us", "lat_p999_us",
    "lat_max_us", "lat_mean_us", "msgs_per_s", "bytes_per_s",
    "cpu_us_per_msg_client", "cpu_us_per_msg_server", "cpu_us_per_msg_services",
)  # fmt: skip


class ResultsError(Exception):
    """A results file is missing, malformed or of another schema; one line says which."""


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers (and a crash) see old or new, never half.

    The temporary file lives in the same directory because ``os.replace`` is
    only atomic within one filesystem; the directory is fsynced so that the
    rename itself survives a power cut. The file is made 0644 whatever the
    umask, like the charts beside it: mkstemp's 0600 would hide results from
    the other users of a shared host.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ResultsWriter:
    """Accumulates a run's cells and rewrites ``results.json`` after each one.

    The file is written as soon as the writer exists (with no cells), so even
    a run interrupted before its first cell leaves its ``run`` description.
    Cells and run facts are checked as :func:`load_results` checks them, so
    that a bad value fails where it is made, not when the report is drawn.
    """

    def __init__(self, run_dir: Path, run_info: dict[str, Any]) -> None:
        self.path = Path(run_dir) / RESULTS_FILE
        _check_run_info(run_info)
        # Deep copies: the caller may keep mutating its dicts after handing them over.
        self._doc: dict[str, Any] = {
            "schema": SCHEMA,
            "run": copy.deepcopy(run_info),
            "cells": [],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(self._doc)

    def add_cell(self, cell: dict[str, Any]) -> None:
        """Append one cell and rewrite the file; on error neither memory nor disk changes."""
        missing = CELL_KEYS - cell.keys()
        if missing:
            raise ValueError(f"cell lacks keys: {', '.join(sorted(missing))}")
        try:
            check_cell(cell)
        except Invalid as exc:
            raise ValueError(f"bad cell: {exc}") from None
        doc = {**self._doc, "cells": [*self._doc["cells"], copy.deepcopy(cell)]}
        self._write(doc)
        self._doc = doc

    def update_run(self, **fields: Any) -> None:
        """Add or replace keys of ``run`` (facts learned after the start) and rewrite."""
        run = {**self._doc["run"], **copy.deepcopy(fields)}
        _check_run_info(run)
        doc = {**self._doc, "run": run}
        self._write(doc)
        self._doc = doc

    def mark_interrupted(self, reason: str, at: str) -> None:
        """Record that the run was stopped (``reason``, e.g. "stopped by SIGINT", at ISO ``at``).

        ``end`` is left alone: an interrupted run has no end, and its results
        are partial (``planned_cells`` in ``run`` says how many were to come).
        """
        self.update_run(interrupted={"reason": reason, "at": at})

    def finish(self, end_time: str) -> None:
        """Record the run's end (ISO 8601) and rewrite; a file without ``end`` is partial."""
        self.update_run(end=end_time)

    def _write(self, doc: dict[str, Any]) -> None:
        try:
            # allow_nan=False: NaN is not JSON, and jq or a browser would reject the file.
            text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ValueError(f"results are not JSON serialisable: {exc}") from exc
        write_atomic(self.path, text)


def _check_run_info(run: dict[str, Any]) -> None:
    try:
        check_run(run)
    except Invalid as exc:
        raise ValueError(f"bad run info: {exc}") from None


def load_results(run_dir: Path) -> dict[str, Any]:
    """Read and check ``results.json`` of ``run_dir``; :class:`ResultsError` if unusable."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file (is this a run directory?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ResultsError(f"{path}: not valid JSON ({exc.msg}: {where})") from None
    _check(path, doc)
    return doc


def _check(path: Path, doc: object) -> None:
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise ResultsError(f"{path}: schema is {schema!r}, this ipcbench reads {SCHEMA!r}")
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("cells"), list):
        raise ResultsError(f"{path}: malformed: needs a 'run' object and a 'cells' list")
    try:
        check_run(doc["run"])
    except Invalid as exc:
        raise ResultsError(f"{path}: run: {exc}") from None
    for i, cell in enumerate(doc["cells"]):
        if not isinstance(cell, dict):
            raise ResultsError(f"{path}: malformed: cell {i} is not an object")
        missing = CELL_KEYS - cell.keys()
        if missing:
            raise ResultsError(f"{path}: malformed: cell {i} lacks {', '.join(sorted(missing))}")
        try:
            check_cell(cell)
        except Invalid as exc:
            raise ResultsError(f"{path}: cell {i}: {exc}") from None


def csv_row(cell: dict[str, Any]) -> dict[str, Any]:
    """One cell as a flat CSV row; ``None`` (not applicable) becomes an empty field."""
    msgs = cell.get("messages") or {}
    lat = cell.get("latency_us") or {}
    tput = cell.get("throughput") or {}
    cpu = cell.get("cpu_us_per_msg") or {}
    row = {
        **{k: cell.get(k) for k in ("transport", "variant", "mode", "payload_bytes", "status")},
        "error": cell.get("error"),
        "messages_sent": msgs.get("sent"),
        "messages_received": msgs.get("received"),
        **{k: msgs.get(k) for k in ("lost", "duplicated", "reordered", "corrupt")},
        "lat_count": lat.get("count"),
        **{f"lat_{k}_us": lat.get(k) for k in ("min", "p50", "p90", "p99", "p999", "max")},
        "lat_mean_us": lat.get("mean"),
        "msgs_per_s": tput.get("msgs_per_s"),
        "bytes_per_s": tput.get("bytes_per_s"),
        "cpu_us_per_msg_client": cpu.get("client"),
        "cpu_us_per_msg_server": cpu.get("server"),
        # Service containers (broker, db), as "role=value" pairs: their set varies.
        "cpu_us_per_msg_services": " ".join(
            f"{role}={v}" for role, v in cpu.items() if role not in ("client", "server")
        )
        or None,
    }
    return {k: "" if v is None else v for k, v in row.items()}


def write_csv(results: dict[str, Any], path: Path) -> None:
    """Write one row per cell with the columns of :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(cell) for cell in results["cells"])
    write_atomic(Path(path), buf.getvalue())
