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

import contextlib
import json
import select
import sys
import time
from array import array
from typing import Any

import transports
from bench import protocol as p
from bench.faults import FaultyChannel
from bench.stats import LatencySummary
from transports.base import Channel, Endpoint, Transport, TransportError

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
    timeout = spec["op_timeout"]
    with transport.listen(endpoint) as listener:
        emit("listening")
        with listener.accept(spec["connect_timeout"]) as ch:
            if spec["mode"] == "latency":
                return serve_echo(ch, timeout)
            return serve_sink(ch, timeout, credit_every=spec["credit_every"])


def serve_echo(ch: Channel, timeout: float) -> dict[str, Any]:
    tally = p.Tally()
    while True:
        message = ch.recv(timeout)
        kind = p.peek_kind(message)
        if kind == p.END:
            ch.send(p.encode_control(p.END, 0), timeout)
            await_bye(ch, timeout)
            return {"messages": tally.counts(int(p.decode(message).body or b"0"))}
        ch.send(message, timeout)  # echo first: checking is kept off the round trip
        if kind == p.DATA or not kind:
            tally.record(p.decode(message))


def await_bye(ch: Channel, timeout: float) -> None:
    """Stay idle until the client has closed the measured phase.

    The harness reads the CPU counters at the client's end mark, which comes
    after the END round trip: the server must not start its own wrap-up
    (building its result, exiting) before then, or that work would be
    charged to the messages.
    """
    with contextlib.suppress(TransportError):  # a BYE that never comes only delays the wrap-up
        ch.recv(timeout)


def serve_sink(ch: Channel, timeout: float, *, credit_every: int) -> dict[str, Any]:
    tally, count = p.Tally(), 0
    first_ns = last_ns = 0
    data_bytes = 0
    while True:
        message = ch.recv(timeout)
        now = time.perf_counter_ns()
        kind = p.peek_kind(message)
        if kind == p.PING:
            ch.send(message, timeout)
            continue
        if kind == p.END:
            ch.send(p.encode_control(p.END, count), timeout)
            await_bye(ch, timeout)
            sent = int(p.decode(message).body or b"0")
            return {
                "messages": tally.counts(sent),
                "first_ns": first_ns,
                "last_ns": last_ns,
                "data_bytes": data_bytes,
            }
        count += 1
        if kind != p.WARMUP:
            decoded = p.decode(message)
            tally.record(decoded)
            if not first_ns:
                first_ns = now
            else:  # bytes after the first arrival, to match the first-to-last interval
                data_bytes += len(decoded.body)
            last_ns = now
        if count % credit_every == 0:
            ch.send(p.encode_control(p.CREDIT, count), timeout)


def run_client(spec: dict[str, Any], transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
    timeout = spec["op_timeout"]
    payloads = p.Payloads(spec["payload_bytes"])
    with transport.connect(endpoint, spec["connect_timeout"]) as raw:
        ch: Channel = FaultyChannel(raw, spec["faults"]) if spec.get("faults") else raw
        # Ready means a real round trip succeeded, not merely that connect did.
        ch.send(payloads.encode(p.PING, 0), timeout)
        if p.peek_kind(ch.recv(timeout)) != p.PING:
            raise TransportError("the readiness round trip came back wrong")
        if spec["mode"] == "latency":
            return ping_pong(ch, payloads, spec)
        return stream(ch, payloads, spec)


def ping_pong(ch: Channel, payloads: p.Payloads, spec: dict[str, Any]) -> dict[str, Any]:
    timeout, n = spec["op_timeout"], spec["messages"]
    for i in range(spec["warmup"]):
        ch.send(payloads.encode(p.WARMUP, i), timeout)
        ch.recv(timeout)
    samples = array("q", bytes(8 * n))
    tally = p.Tally()
    clock = time.perf_counter_ns
    mark("start")
    for i in range(n):
        message = payloads.encode(p.DATA, i)
        t0 = clock()
        ch.send(message, timeout)
        reply = ch.recv(timeout)
        samples[i] = clock() - t0
        tally.record(p.decode(reply))
    mark("end")
    ch.send(p.encode_control(p.END, 0, str(n).encode()), timeout)
    ch.recv(timeout)
    ch.send(p.encode_control(p.BYE, 0), timeout)
    return {"messages": tally.counts(n), "latency_us": LatencySummary.from_ns(samples).to_us_dict()}


def stream(ch: Channel, payloads: p.Payloads, spec: dict[str, Any]) -> dict[str, Any]:
    timeout, n, window = spec["op_timeout"], spec["messages"], spec["window"]
    sent = credited = 0

    def send(kind: int, seq: int) -> None:
        nonlocal sent, credited
        while sent - credited >= window:  # flow control: wait for the receiver's credit
            credited = max(credited, p.decode(ch.recv(timeout)).seq)
        ch.send(payloads.encode(kind, seq), timeout)
        sent += 1

    for i in range(spec["warmup"]):
        send(p.WARMUP, i)
    while credited < sent:  # drain the warm-up so the measured phase starts empty
        credited = max(credited, p.decode(ch.recv(timeout)).seq)
    mark("start")
    for i in range(n):
        send(p.DATA, i)
    ch.send(p.encode_control(p.END, 0, str(n).encode()), timeout)
    while p.peek_kind(ch.recv(timeout)) != p.END:
        pass
    mark("end")
    ch.send(p.encode_control(p.BYE, 0), timeout)
    return {"sent": n}


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
