"""Measure one cell: a fresh server container, a fresh client container, one exchange.

The harness starts the server agent, waits until it has bound its endpoint,
starts the client agent (which proves readiness with a real round trip, then
warms up), reads both containers' cgroup CPU counters at the client's
``mark`` events, and collects both agents' results. Any failure (a peer that
dies, hangs, or reports an error; a deadline) fails this cell only, with its
cause and the tail of the containers' logs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transports
from bench.protocol import HEADER_BYTES
from bench.scenario import Cell
from bench.services import Service, ServiceError
from runtime import PROJECT_ROOT
from runtime.container import Container, ContainerError, ContainerSpec, Volume
from runtime.lines import LineReader
from runtime.local import LocalRuntime
from runtime.network import LabNetwork

log = logging.getLogger(__name__)

SERVER_PORT = 7000
SHARED_DIR = "/shared"


class CellFailure(Exception):
    """The cell failed; the message is its cause."""


@dataclass
class Measured:
    """What the harness itself measured around the agents."""

    cpu_ns: dict[str, int]
    wall_ns: int


def agent_spec(
    cell: Cell,
    role: str,
    *,
    op_timeout: float,
    options: dict[str, Any],
    faults: dict[str, list[int]] | None,
) -> dict[str, Any]:
    return {
        "role": role,
        "transport": cell.transport,
        "variant": cell.variant,
        "mode": cell.mode,
        "options": options,
        "payload_bytes": cell.payload_bytes,
        "messages": cell.messages,
        "max_seconds": cell.max_seconds,
        "warmup": cell.warmup,
        "window": cell.window,
        "credit_every": cell.credit_every,
        "op_timeout": op_timeout,
        "connect_timeout": 10.0,
        "endpoint": {"host": "server", "port": SERVER_PORT, "shared_dir": SHARED_DIR},
        "faults": faults if role == "client" else None,
        "lossy": not transports.get(cell.transport).delivers(cell.variant),
    }


def container_spec(
    name: str, spec: dict[str, Any], volume: Path, limits: dict[str, Any] | None = None
) -> ContainerSpec:
    """An agent's container, with the scenario's ``limits`` (cpus, cpuset_cpus, memory, ...)."""
    return ContainerSpec(
        name=name,
        command=(sys.executable, "-m", "bench.agent", json.dumps(spec)),
        volumes=(Volume(str(volume), SHARED_DIR),),
        cwd=str(PROJECT_ROOT),
        stdin_pipe=True,
        stdout_pipe=True,
        **(limits or {}),
    )


class Events:
    """JSON-line events from a container's stdout, read with a deadline."""

    def __init__(self, container: Container):
        assert container.stdout is not None
        self.container = container
        self.lines = LineReader(container.stdout)

    def next(self, deadline: float) -> dict[str, Any]:
        name = self.container.spec.name
        try:
            line = self.lines.next(deadline)
        except TimeoutError:
            raise CellFailure(f"{name} did not answer before the cell's deadline") from None
        except EOFError:
            code = self.container.wait(5)
            raise CellFailure(f"{name} exited with status {code} before reporting") from None
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "error":
            raise CellFailure(event["message"])
        return event


def run_cell(
    rt: LocalRuntime,
    net: LabNetwork,
    cell: Cell,
    *,
    index: int,
    op_timeout: float,
    options: dict[str, Any],
    faults: dict[str, list[int]] | None = None,
    logs_dir: Path | None = None,
    services: dict[str, Service] | None = None,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure ``cell``; always returns a results cell (status ok or failed).

    ``services`` are the run's service containers; those the cell's transport
    needs are (re)started if they died, reset, and sampled for CPU.
    """
    started = time.time()
    t0 = time.monotonic_ns()
    result = base_cell(cell)
    result["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))
    volume = rt.volume(f"cell{index}")
    needed = {n: (services or {})[n] for n in transports.get(cell.transport).services}
    containers: dict[str, Container] = {}
    try:
        addresses = {name: service.ensure(index) for name, service in needed.items()}
        specs = {
            role: agent_spec(cell, role, op_timeout=op_timeout, options=options, faults=faults)
            for role in ("server", "client")
        }
        for spec in specs.values():
            spec["endpoint"]["services"] = addresses
        samplers = {s.role: s for s in needed.values()}
        outcome = _exchange(rt, net, cell, specs, volume, containers, samplers, limits)
        result.update(outcome)
        problems = integrity_problems(cell, result["messages"])
        if problems:
            raise CellFailure("integrity: " + ", ".join(problems))
    except (CellFailure, ContainerError, ServiceError) as exc:
        result.update(status="failed", error=str(exc) + _log_tail(containers))
    finally:
        for c in containers.values():
            if logs_dir is not None:
                _save_logs(c, logs_dir / f"cell{index}-{c.spec.name}.log")
            c.remove()
    result["duration_s"] = round((time.monotonic_ns() - t0) / 1e9, 3)
    return result


def base_cell(cell: Cell) -> dict[str, Any]:
    return {
        "transport": cell.transport,
        "variant": cell.variant,
        "mode": cell.mode,
        "payload_bytes": cell.payload_bytes,
        "header_bytes": HEADER_BYTES,
        "status": "ok",
        "error": None,
        "settings": {},
        "messages": None,
        "latency_us": None,
        "throughput": None,
        "cpu_us_per_msg": None,
        "notes": [],
    }


def _exchange(
    rt: LocalRuntime,
    net: LabNetwork,
    cell: Cell,
    specs: dict[str, dict[str, Any]],
    volume: Path,
    containers: dict[str, Container],
    samplers: dict[str, Service],
    limits: dict[str, Any] | None,
) -> dict[str, Any]:
    deadline = time.monotonic() + cell_timeout(cell)
    start_ms: dict[str, float] = {}
    for role in ("server", "client"):
        c = rt.container(container_spec(role, specs[role], volume, limits), net)
        containers[role] = c
        t0 = time.monotonic_ns()
        c.start()
        start_ms[role] = round((time.monotonic_ns() - t0) / 1e6, 2)
        if role == "server":
            server_events = Events(c)
            server_events.next(deadline)  # "listening"
    client_events = Events(containers["client"])
    cpu: dict[str, dict[str, int]] = {}
    client_result: dict[str, Any] = {}
    while not client_result:
        event = client_events.next(deadline)
        if event["event"] == "mark":
            meters: dict[str, Container | Service] = {**containers, **samplers}
            cpu[event["name"]] = {role: m.cpu_ns() for role, m in meters.items()}
            _send_go(containers["client"])
        elif event["event"] == "result":
            client_result = event
    server_result = server_events.next(deadline)
    combined = combine(cell, specs, client_result, server_result, cpu)
    combined["container_start_ms"] = start_ms
    throttled = [role for role, c in containers.items() if c.cpu_stats().throttled]
    if throttled:  # a CPU quota held a side back: its figures measure the quota too
        combined["notes"] = [*combined.get("notes", []),
                             f"CPU quota throttled: {', '.join(throttled)}"]  # fmt: skip
    combined["settings"]["throttled"] = throttled
    combined["settings"]["container_limits"] = limits or {}
    return combined


def _send_go(container: Container) -> None:
    assert container.stdin is not None
    container.stdin.write(b"go\n")
    container.stdin.flush()


def combine(
    cell: Cell,
    specs: dict[str, dict[str, Any]],
    client: dict[str, Any],
    server: dict[str, Any],
    cpu: dict[str, dict[str, int]],
) -> dict[str, Any]:
    client_spec = specs["client"]
    settings = {
        "transport": client["settings"],
        "server_transport": server["settings"],
        "messages_planned": cell.messages,
        "max_seconds": cell.max_seconds,
        "warmup_planned": client_spec["warmup"],
        "op_timeout_s": client_spec["op_timeout"],
        "integrity": "crc32 per message",
        "clock": "perf_counter_ns (CLOCK_MONOTONIC)",
    }
    out: dict[str, Any] = {"settings": settings}
    if cell.mode == "latency":
        settings["exchange"] = "closed loop: request, server echoes the same bytes"
        out["messages"] = client["messages"]
        out["messages_server"] = server["messages"]
        out["latency_us"] = client["latency_us"]
        counted = max(1, client["messages"]["sent"])
    else:
        settings["flow_control"] = {
            "window_messages": client_spec["window"],
            "credit_every": client_spec["credit_every"],
        }
        out["messages"] = server["messages"]
        counted = max(1, server["messages"]["received"])
        span = (server["last_ns"] - server["first_ns"]) / 1e9
        if span > 0:
            out["throughput"] = {
                "msgs_per_s": (counted - 1) / span,
                "bytes_per_s": server["data_bytes"] / span,
            }
    if out["messages"]["sent"] < cell.messages:
        out["notes"] = [
            f"stopped at the {cell.max_seconds:g} s time limit after "
            f"{out['messages']['sent']:,} of {cell.messages:,} messages"
        ]
    out["cpu_us_per_msg"] = {
        role: round((cpu["end"][role] - cpu["start"][role]) / 1e3 / counted, 3)
        for role in cpu["end"]
    }
    return out


def integrity_problems(cell: Cell, messages: dict[str, int] | None) -> list[str]:
    if not messages or not transports.get(cell.transport).delivers(cell.variant):
        return []
    return [
        f"{messages[k]} {k}" for k in ("lost", "duplicated", "reordered", "corrupt") if messages[k]
    ]


def cell_timeout(cell: Cell) -> float:
    """The harness's deadline for a whole cell: generous, the agents' own timeouts come first."""
    per_message = (cell.messages + cell.warmup) * 0.002 * (1 + cell.payload_bytes / 65536)
    limit = 1.5 * cell.max_seconds if cell.max_seconds is not None else per_message
    return 30.0 + min(per_message, limit)


def _log_tail(containers: dict[str, Container], lines: int = 3) -> str:
    """Each container's state and the last lines of its log, for a failed cell's error."""
    tails = []
    for name, c in containers.items():
        state = "still running" if c.running() else f"exited with status {c.shim_status()}"
        text = c.logs().strip().splitlines()[-lines:]
        tails.append(f"{name} {state}" + (": " + " | ".join(text) if text else ", no log output"))
    return ("; " + "; ".join(tails)) if tails else ""


def _save_logs(container: Container, path: Path) -> None:
    text = container.logs()
    if text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
