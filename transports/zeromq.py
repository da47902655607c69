"""ZeroMQ between the containers: request/reply, push/pull or pub/sub sockets over TCP.

The server binds, the client connects, one context (one I/O thread) per side;
the sockets, monitors and channel are in :mod:`transports.zeromq_sockets`.

* ``reqrep``: a DEALER (client) and a ROUTER (server) exchanging the REQ/REP
  envelope (an empty delimiter frame before the message), so the bytes on the
  wire are those of REQ/REP (tests/test_zeromq.py talks to real REQ and REP
  sockets). REQ/REP sockets themselves cannot honour the channel contract:
  REP cannot send first or receive twice, and REQ (even REQ_RELAXED +
  REQ_CORRELATE) discards all but the newest reply. The benchmark still uses
  it strictly request/reply (latency: the reply on the same socket;
  throughput: a window of 1, each reply is the credit).
* ``pushpull``: server PUSH -> client PULL on ``port``; the mirrored client
  PUSH -> server PULL on a port the server picks and announces first.
* ``pubsub``: the same with XPUB -> SUB, topic ``s2c`` one way and ``c2s`` the
  other. XPUB is PUB that also sees subscriptions, so each side sends only once
  the other's subscription has arrived (no slow joiner), and the client's hello
  proves the mirrored direction to the server. A PUB at its send high-water
  mark drops, which is why this variant is lossy.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import zmq

from transports.base import (
    Channel,
    Endpoint,
    Listener,
    Options,
    Transport,
    TransportError,
)
from transports.rendezvous import resolve_once
from transports.zeromq_sockets import (
    MAX_MSG,
    Sockets,
    ZeromqChannel,
    ZeromqListener,
    ZeromqOptions,
    bind,
    readable,
)

__all__ = ["CLIENT_ID", "ZeromqOptions", "ZeromqTransport"]

CLIENT_ID = b"ipcbench-client"  # the DEALER's routing id, so the ROUTER can send first
C2S, S2C = b"c2s", b"s2c"  # pub/sub topics, one per direction


# Per variant: (client tx, client rx, server tx, server rx) socket types; rx None: tx does both.
_SOCKETS = {
    "reqrep": (zmq.DEALER, None, zmq.ROUTER, None),
    "pushpull": (zmq.PUSH, zmq.PULL, zmq.PUSH, zmq.PULL),
    "pubsub": (zmq.XPUB, zmq.SUB, zmq.XPUB, zmq.SUB),
}


class ZeromqTransport(Transport[ZeromqOptions]):
    """pyzmq sockets over TCP; see the module docstring for each variant."""

    name: ClassVar[str] = "zeromq"
    variants: ClassVar[tuple[str, ...]] = ("reqrep", "pushpull", "pubsub")
    options_type: ClassVar[type[Options]] = ZeromqOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "ZeroMQ (pyzmq) sockets over TCP: DEALER/ROUTER, PUSH/PULL or PUB/SUB"

    @classmethod
    def stream_window(cls, variant: str | None) -> int | None:
        return 1 if variant == "reqrep" else None

    @classmethod
    def delivers(cls, variant: str | None) -> bool:
        return variant != "pubsub"

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        if variant == "reqrep":
            return ("request and reply on the same DEALER/ROUTER connection" if mode == "latency"
                    else "request/reply: a window of 1, each reply is the credit")  # fmt: skip
        back = "a mirrored PUSH/PULL pair" if variant == "pushpull" else "a mirrored topic"
        if mode == "latency":
            return f"request one way, the reply on {back} (a port the server announces)"
        return f"one-way stream; credits come back on {back} (a port the server announces)"

    def listen(self, endpoint: Endpoint) -> Listener:
        assert self.variant is not None
        _, _, tx, rx = _SOCKETS[self.variant]
        where = f"tcp://0.0.0.0:{endpoint.port}"
        s = Sockets(self.options, tx, rx)
        try:
            if self.variant == "reqrep":
                s.tx.setsockopt(zmq.ROUTER_MANDATORY, 1)
            bind(s.tx, where)
            if self.variant == "pubsub":
                s.rx.setsockopt(zmq.SUBSCRIBE, C2S)
            # The mirrored direction on a port the OS picks (port + 1 may be taken).
            mirror = bind(s.rx, "tcp://0.0.0.0:*") if rx is not None else 0
        except zmq.ZMQError as exc:
            s.close()
            raise TransportError(f"cannot listen on {where}: {exc}") from exc
        return ZeromqListener(s, where, lambda s, deadline: self._accept(s, deadline, mirror))

    def _accept(self, s: Sockets, deadline: float, mirror: int) -> Channel:
        where = "the ZeroMQ listener"
        if self.variant == "reqrep":
            s.wait_for(lambda: s.handshakes[0], deadline, where)
            return ZeromqChannel(s, prefix=[CLIENT_ID, b""], rx_frames=3)
        prefix = [S2C] if self.variant == "pubsub" else []
        s.wait_for(s.tx_ready, deadline, where)
        s.tx.send_multipart([*prefix, str(mirror).encode()])  # the client's first message
        if self.variant == "pubsub":  # the hello proves the client's XPUB reaches our SUB
            s.wait_for(lambda: readable(s.rx) and s.rx.recv_multipart() == [C2S], deadline, where)
        else:
            s.wait_for(lambda: s.handshakes[1], deadline, where)
        return ZeromqChannel(s, prefix=prefix, rx_frames=len(prefix) + 1)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        assert self.variant is not None
        tx, rx, _, _ = _SOCKETS[self.variant]
        where = f"tcp://{endpoint.host}:{endpoint.port}"
        deadline = time.monotonic() + timeout
        host = resolve_once(endpoint.host, deadline)
        s = Sockets(self.options, tx, rx)
        try:
            # Queue only on completed connections. Not on a SUB: with IMMEDIATE
            # it does not send its subscription (libzmq 4.3.5).
            s.tx.setsockopt(zmq.IMMEDIATE, 1)
            if self.variant == "reqrep":
                s.tx.setsockopt(zmq.ROUTING_ID, CLIENT_ID)
                s.tx.connect(f"tcp://{host}:{endpoint.port}")
                s.wait_for(lambda: s.handshakes[0], deadline, where)
                return ZeromqChannel(s, prefix=[b""], rx_frames=2)
            if self.variant == "pubsub":
                s.rx.setsockopt(zmq.SUBSCRIBE, S2C)
            s.rx.connect(f"tcp://{host}:{endpoint.port}")
            announced = s.wait_for(
                lambda: readable(s.rx) and s.rx.recv_multipart(), deadline, where
            )
            s.tx.connect(f"tcp://{host}:{int(announced[-1])}")
            s.wait_for(s.tx_ready, deadline, where)
        except BaseException as exc:
            s.close()
            if isinstance(exc, zmq.ZMQError | ValueError):
                raise TransportError(f"cannot connect to {where}: {exc}") from exc
            raise
        if self.variant == "pubsub":
            s.tx.send_multipart([C2S])  # the hello: the server's subscription is in place
            return ZeromqChannel(s, prefix=[C2S], rx_frames=2)
        return ZeromqChannel(s, prefix=[], rx_frames=1)

    def settings(self) -> dict[str, Any]:
        assert self.variant is not None
        ctx, crx, stx, srx = (zmq.SocketType(k).name if k else None for k in _SOCKETS[self.variant])
        return {
            **super().settings(),
            "sockets": {"client": [ctx, crx or ctx], "server": [stx, srx or stx]},
            "mirror_port": "chosen by the server's OS, announced first"
            if self.variant != "reqrep"
            else None,
            "libzmq": zmq.zmq_version(),
            "pyzmq": zmq.pyzmq_version(),
            "io_threads": 1,
            "context": "one per channel",
            "immediate_on_connect": True,
            "router_mandatory": self.variant == "reqrep",
            "tcp_nodelay": "on: libzmq sets it on every TCP connection (tests/test_zeromq.py)",
            "maxmsgsize": MAX_MSG,
            "recv": "NOBLOCK try, then zmq_poll on the socket and its monitor",
            "peer_death": "socket monitor EVENT_DISCONNECTED + ZMTP heartbeats",
            "pubsub_drop_at_hwm": self.variant == "pubsub",
        }
