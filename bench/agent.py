"""The worker that runs inside each container (pyperf's manager/worker pattern).

Started by the harness as ``python -m bench.agent '<json spec>'`` with the
container's stdin and stdout as pipes. It speaks JSON lines on stdout:

* ``{"event": "listening"}`` (server) once its endpoint is bound;
* ``{"event": "mark", "name": "start"|"end"}`` (client) around the measured
  phase, then waits for ``go`` on stdin so that the harness can read both
  containers' cgroup CPU counters exactly at the phase's edges;
* ``{"event": "result", ...}`` or ``{"event": "error", "message": ...}`` last.

Logging goes to stderr, which the runtime keeps as the container's log.
"""

from __future__ import annotations

import json
import select
import sys
import time
from typing import Any

import transports
from bench import exchange
from bench import protocol as p
from bench.exchange import Plan
from bench.faults import FaultyChannel
from transports.base import Channel, Endpoint, Transport, TransportError, TransportTimeout

RESULT_SCHEMA = "ipcbench/agent-result@1"


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def wait_go(timeout: float = 30.0) -> None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready or sys.stdin.readline().strip() != "go":
        raise RuntimeError("the harness did not answer a mark")


def mark(name: str) -> None:
    emit("mark", name=name)
    wait_go()


def make_transport(spec: dict[str, Any]) -> Transport:
    cls = transports.get(spec["transport"])
    options = cls.options_type(**spec.get("options", {}))
    return cls(variant=spec["variant"], mode=spec["mode"], options=options)


def run_server(spec: dict[str, Any], transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
    plan = Plan.from_spec(spec)
    with transport.listen(endpoint) as listener:
        emit("listening")
        with listener.accept(spec["connect_timeout"]) as ch:
            serve = exchange.serve_echo if plan.mode == "latency" else exchange.serve_sink
            return serve(ch, plan)


def run_client(spec: dict[str, Any], transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
    plan = Plan.from_spec(spec)
    payloads = p.Payloads(spec["payload_bytes"])
    with transport.connect(endpoint, spec["connect_timeout"]) as raw:
        ch: Channel = FaultyChannel(raw, spec["faults"]) if spec.get("faults") else raw
        prove_ready(ch, payloads, plan)
        run = exchange.ping_pong if plan.mode == "latency" else exchange.stream
        return run(ch, payloads, plan, mark)


def prove_ready(ch: Channel, payloads: p.Payloads, plan: Plan) -> None:
    """Ready means a real round trip succeeded, not merely that connect did.

    On a lossy variant (a subscriber may still be joining), the ping is
    repeated until one comes back or the timeout passes.
    """
    deadline = time.monotonic() + plan.timeout
    wait = exchange.LOSSY_WAIT_S / 4 if plan.lossy else plan.timeout
    while True:
        ch.send(payloads.encode(p.PING, 0), plan.timeout)
        try:
            while p.peek_kind(ch.recv(wait)) != p.PING:
                pass
            return
        except TransportTimeout:
            if not plan.lossy or time.monotonic() > deadline:
                raise


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        transport = make_transport(spec)
        endpoint = Endpoint(**spec["endpoint"])
        run = run_server if spec["role"] == "server" else run_client
        result = run(spec, transport, endpoint)
        emit("result", schema=RESULT_SCHEMA, settings=transport.settings(), **result)
        return 0
    except (TransportError, RuntimeError, OSError, ValueError) as exc:
        emit("error", message=f"{spec['role']}: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
