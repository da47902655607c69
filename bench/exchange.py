"""The exchanges the agents run over a channel: what each side sends, times and checks.

latency mode
    The client sends a request and waits for the echo (closed loop); only
    the send and the receive are inside the timed window.
throughput mode
    The client streams; the receiver returns a credit every ``credit_every``
    messages, and the client never has more than ``window`` unaccounted for.

A credit carries how many messages the receiver has *accounted for*: one
past the highest sequence number seen in each phase. On a transport that may
lose messages (MQTT QoS 0, ZeroMQ PUB/SUB), a lost message is then still
accounted for by the next one, and the stream does not stall; where loss is
allowed, a missing credit or reply is waited for a bounded time and counted,
not fatal. On a transport that promises delivery, any loss fails the cell.

The end of a cell is END (answered), then, after the client's end mark,
BYE: the server stays idle until BYE so its wrap-up is not charged to the
measured messages.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import protocol as p
from bench.stats import LatencySummary
from transports.base import Channel, TransportError, TransportTimeout

LOSSY_WAIT_S = 1.0  # how long a lossy variant waits for a reply or credit before moving on
END_RESEND_S = 0.2  # a lossy variant repeats END until it is answered


@dataclass(frozen=True)
class Plan:
    """What one side does in a cell (from the agent's spec)."""

    mode: str
    messages: int
    warmup: int
    window: int
    credit_every: int
    timeout: float
    lossy: bool
    #: The measured phase ends after ``messages`` or this many seconds, whichever
    #: comes first (the warm-up gets a fifth of it); None: messages only.
    max_seconds: float | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Plan:
        return cls(spec["mode"], spec["messages"], spec["warmup"], spec["window"],
                   spec["credit_every"], spec["op_timeout"], bool(spec.get("lossy")),
                   spec.get("max_seconds"))  # fmt: skip

    def stop_at(self, share: float = 1.0) -> int:
        """The perf_counter_ns at which a phase given ``share`` of the time limit ends."""
        if self.max_seconds is None:
            return 1 << 62
        return time.perf_counter_ns() + int(self.max_seconds * share * 1e9)


CHECK_EVERY = 16  # messages between two looks at the clock for the time limit


Mark = Callable[[str], None]


# -- server side -----------------------------------------------------------------


def serve_echo(ch: Channel, plan: Plan) -> dict[str, Any]:
    tally = p.Tally()
    while True:
        message = ch.recv(plan.timeout)
        kind = p.peek_kind(message)
        if kind == p.END:
            ch.send(p.encode_control(p.END, 0), plan.timeout)
            end = p.decode(message)
            await_bye(ch, plan)
            return {"messages": tally.counts(int(end.body or b"0"))}
        if kind == p.BYE:
            continue  # a repeated END's stray BYE, on a lossy variant
        ch.send(message, plan.timeout)  # echo first: checking is kept off the round trip
        if kind == p.DATA or not kind:
            tally.record(p.decode(message))


def serve_sink(ch: Channel, plan: Plan) -> dict[str, Any]:
    tally, count = p.Tally(), 0
    highest = {p.WARMUP: -1, p.DATA: -1}
    first_ns = last_ns = data_bytes = 0
    while True:
        message = ch.recv(plan.timeout)
        now = time.perf_counter_ns()
        kind = p.peek_kind(message)
        if kind == p.PING:
            ch.send(message, plan.timeout)
            continue
        if kind == p.END:
            ch.send(p.encode_control(p.END, count), plan.timeout)
            sent = int(p.decode(message).body or b"0")
            await_bye(ch, plan)
            return {"messages": tally.counts(sent), "first_ns": first_ns, "last_ns": last_ns,
                    "data_bytes": data_bytes}  # fmt: skip
        if kind not in highest:
            continue
        count += 1
        decoded = p.decode(message)
        if decoded.ok:
            highest[kind] = max(highest[kind], decoded.seq)
        if kind == p.DATA:
            tally.record(decoded)
            if first_ns:  # bytes after the first arrival, to match the first-to-last interval
                data_bytes += len(decoded.body)
            else:
                first_ns = now
            last_ns = now
        if count % plan.credit_every == 0:
            accounted = highest[p.WARMUP] + 1 + highest[p.DATA] + 1
            ch.send(p.encode_control(p.CREDIT, max(count, accounted)), plan.timeout)


def await_bye(ch: Channel, plan: Plan) -> None:
    """Stay idle until the client has closed the measured phase (see the module doc)."""
    wait = LOSSY_WAIT_S if plan.lossy else plan.timeout
    deadline = time.monotonic() + wait
    with contextlib.suppress(TransportError):  # a BYE that never comes only delays the wrap-up
        while time.monotonic() < deadline:
            if p.peek_kind(ch.recv(max(0.001, deadline - time.monotonic()))) == p.BYE:
                return


# -- client side -----------------------------------------------------------------


def ping_pong(ch: Channel, payloads: p.Payloads, plan: Plan, mark: Mark) -> dict[str, Any]:
    stop = plan.stop_at(0.2)
    clock = time.perf_counter_ns
    for i in range(plan.warmup):
        ch.send(payloads.encode(p.WARMUP, i), plan.timeout)
        _await_reply(ch, plan, p.WARMUP, i)
        if i % CHECK_EVERY == 0 and clock() > stop:
            break
    samples = array("q", bytes(8 * plan.messages))
    tally = p.Tally()
    timed = sent = 0
    mark("start")
    stop = plan.stop_at()
    if plan.lossy:
        for i in range(plan.messages):
            message = payloads.encode(p.DATA, i)
            t0 = clock()
            ch.send(message, plan.timeout)
            reply = _await_reply(ch, plan, p.DATA, i)
            if reply is not None:
                samples[timed] = clock() - t0
                timed += 1
                tally.record(reply)
            sent = i + 1
            if i % CHECK_EVERY == 0 and clock() > stop:
                break
    else:
        for i in range(plan.messages):
            message = payloads.encode(p.DATA, i)
            t0 = clock()
            ch.send(message, plan.timeout)
            raw = ch.recv(plan.timeout)
            t1 = clock()
            samples[i] = t1 - t0
            tally.record(p.decode(raw))
            if i % CHECK_EVERY == 0 and t1 > stop:
                sent = i + 1
                break
        else:
            sent = plan.messages
        timed = sent
    mark("end")
    finish(ch, plan, sent)
    result: dict[str, Any] = {"messages": tally.counts(sent)}
    result["latency_us"] = LatencySummary.from_ns(samples[:timed]).to_us_dict() if timed else None
    return result


def _await_reply(ch: Channel, plan: Plan, kind: int, seq: int) -> p.Decoded | None:
    """The reply to request ``seq``; on a lossy variant, None when it never comes."""
    if not plan.lossy:
        return p.decode(ch.recv(plan.timeout))
    deadline = time.monotonic() + LOSSY_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            reply = p.decode(ch.recv(left))
        except TransportTimeout:
            return None
        if not reply.ok or (reply.kind == kind and reply.seq >= seq):
            return reply  # a late reply to an earlier request is skipped
    return None


def stream(ch: Channel, payloads: p.Payloads, plan: Plan, mark: Mark) -> dict[str, Any]:
    sent = credited = 0

    def take_credit(wait: float) -> None:
        nonlocal credited
        try:
            credited = max(credited, p.decode(ch.recv(wait)).seq)
        except TransportTimeout:
            if not plan.lossy:
                raise
            credited = sent  # the credit (or what it counted) was lost: move on

    def send(kind: int, seq: int) -> None:
        nonlocal sent
        while sent - credited >= plan.window:  # flow control: wait for the receiver's credit
            take_credit(LOSSY_WAIT_S if plan.lossy else plan.timeout)
        ch.send(payloads.encode(kind, seq), plan.timeout)
        sent += 1

    stop = plan.stop_at(0.2)
    for i in range(plan.warmup):
        send(p.WARMUP, i)
        # Stop early only on a whole credit batch, so that the drain below ends.
        if (i + 1) % plan.credit_every == 0 and time.perf_counter_ns() > stop:
            break
    while credited < sent:  # drain the warm-up so the measured phase starts empty
        take_credit(LOSSY_WAIT_S if plan.lossy else plan.timeout)
    mark("start")
    stop = plan.stop_at()
    count = plan.messages
    for i in range(plan.messages):
        send(p.DATA, i)
        if i % CHECK_EVERY == 0 and time.perf_counter_ns() > stop:
            count = i + 1
            break
    finish(ch, plan, count, before_bye=lambda: mark("end"))
    return {"sent": count}


def finish(
    ch: Channel, plan: Plan, sent: int, before_bye: Callable[[], None] | None = None
) -> None:
    """END until answered (once, on a reliable variant), then BYE."""
    end = p.encode_control(p.END, 0, str(sent).encode())
    deadline = time.monotonic() + plan.timeout
    ch.send(end, plan.timeout)
    while True:
        wait = min(END_RESEND_S, plan.timeout) if plan.lossy else plan.timeout
        try:
            if p.peek_kind(ch.recv(wait)) == p.END:
                break
        except TransportTimeout:
            if not plan.lossy or time.monotonic() > deadline:
                raise
            ch.send(end, plan.timeout)
    if before_bye:
        before_bye()
    ch.send(p.encode_control(p.BYE, 0), plan.timeout)
