"""The plumbing of the zeromq transport: a side's sockets, their monitors, its channel.

Every data socket has a monitor. ``HANDSHAKE_SUCCEEDED`` tells ``connect`` /
``accept`` that a ZMTP connection is up; ``DISCONNECTED`` makes ``send`` /
``recv`` raise :class:`PeerClosed` (ZeroMQ itself would silently reconnect, so
a dead peer would look like silence). ZMTP heartbeats turn a peer that vanished
without a FIN into such a disconnect too.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from transports.base import Channel, Listener, Options, PeerClosed, TransportError, TransportTimeout

MAX_MSG = 16 << 20  # ZMQ_MAXMSGSIZE on receiving sockets: a bigger frame drops the connection
_MONITORED = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


@dataclass(frozen=True)
class ZeromqOptions(Options):
    """High-water marks in messages, times in milliseconds."""

    sndhwm: int = 1000
    rcvhwm: int = 1000
    #: On close, queued messages may still leave for this long (a final BYE must
    #: not be dropped); 0 once the peer is known to be gone.
    linger_ms: int = 200
    heartbeat_ivl_ms: int = 1000
    heartbeat_timeout_ms: int = 3000
    #: Messages at least this big are sent zero-copy (pyzmq's copy_threshold).
    copy_threshold: int = zmq.COPY_THRESHOLD


class Sockets:
    """One side's context (one I/O thread), data sockets and monitors."""

    def __init__(self, opts: ZeromqOptions, tx: int, rx: int | None) -> None:
        self.ctx = zmq.Context(io_threads=1)
        self.opts = opts
        self.tx = self._socket(tx)
        self.rx = self.tx if rx is None else self._socket(rx)
        self.data = [self.tx] if rx is None else [self.tx, self.rx]
        self.monitors = [s.get_monitor_socket(_MONITORED) for s in self.data]
        self.handshakes = [0] * len(self.monitors)
        self.gone = ""
        self.xpub = tx == zmq.XPUB
        self.subscribed = False  # the XPUB saw the peer's subscription

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        s: zmq.Socket[bytes] = self.ctx.socket(kind)
        o = self.opts
        for option, value in ((zmq.SNDHWM, o.sndhwm), (zmq.RCVHWM, o.rcvhwm),
                              (zmq.MAXMSGSIZE, MAX_MSG), (zmq.LINGER, o.linger_ms),
                              (zmq.HEARTBEAT_IVL, o.heartbeat_ivl_ms),
                              (zmq.HEARTBEAT_TIMEOUT, o.heartbeat_timeout_ms)):  # fmt: skip
            s.setsockopt(option, value)
        s.copy_threshold = o.copy_threshold
        return s

    def drain(self) -> None:
        """Read pending monitor events and XPUB subscriptions without blocking."""
        for i, mon in enumerate(self.monitors):
            while readable(mon):
                event = recv_monitor_message(mon)["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.handshakes[i] += 1
                elif event == zmq.EVENT_DISCONNECTED:
                    self.gone = "the peer disconnected"
        if self.xpub:
            while readable(self.tx):
                self.subscribed |= self.tx.recv().startswith(b"\x01")

    def tx_ready(self) -> bool:
        """Whether a message sent now reaches the peer (for an XPUB: it has subscribed)."""
        return self.subscribed if self.xpub else self.handshakes[0] > 0

    def wait_for(self, ready: Callable[[], Any], deadline: float, where: str) -> Any:
        """Poll until ``ready()`` returns something true, the peer leaves or ``deadline``."""
        poller = zmq.Poller()
        for s in [*self.monitors, *self.data]:
            poller.register(s, zmq.POLLIN)
        while True:
            self.drain()
            # Touching a socket makes it process libzmq's commands: a bound SUB only
            # sends its subscription to a new peer, a ROUTER only routes to it, then.
            for sock in self.data:
                readable(sock)
            if result := ready():
                return result
            if self.gone:
                raise PeerClosed(f"{where}: {self.gone} during the handshake")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"no ZeroMQ peer at {where} in time")
            poller.poll(max(1, math.ceil(left * 1000)))

    def close(self) -> None:
        linger = 0 if self.gone else self.opts.linger_ms
        for s in self.data:
            with contextlib.suppress(zmq.ZMQError):
                s.disable_monitor()
        with contextlib.suppress(zmq.ZMQError):
            self.ctx.destroy(linger=linger)


class ZeromqChannel(Channel):
    """Messages go out as ``prefix + [message]`` on ``tx``; ``rx`` frames end in the message."""

    def __init__(self, s: Sockets, *, prefix: list[bytes], rx_frames: int) -> None:
        self._s = s
        self._prefix = prefix
        self._rx_frames = rx_frames
        self._in = zmq.Poller()
        self._out = zmq.Poller()
        for mon in s.monitors:
            self._in.register(mon, zmq.POLLIN)
            self._out.register(mon, zmq.POLLIN)
        self._in.register(s.rx, zmq.POLLIN)
        self._out.register(s.tx, zmq.POLLOUT)
        self._closed = False

    def send(self, message: bytes, timeout: float) -> None:
        self._check("send")
        frames = [*self._prefix, message]
        self._wait(lambda: self._s.tx.send_multipart(frames, zmq.NOBLOCK, copy=False),
                   self._out, timeout, "send not accepted")  # fmt: skip

    def recv(self, timeout: float) -> bytes:
        return self._wait(self._take, self._in, timeout, "no message")

    def _take(self) -> bytes:
        frames = self._s.rx.recv_multipart(zmq.NOBLOCK)
        if len(frames) != self._rx_frames:
            raise TransportError(f"expected {self._rx_frames} frames, got {len(frames)}")
        return frames[-1]

    def _wait(self, op: Callable[[], Any], poller: zmq.Poller, timeout: float, what: str) -> Any:
        # Try first: in the hot path the message is often there (or the send
        # fits), and one zmq_poll per call is saved.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return op()
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:  # ROUTER_MANDATORY: the client is gone
                    raise PeerClosed("the peer disconnected") from exc
                raise TransportError(f"zeromq: {exc}") from exc
            self._check("wait")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"{what} within {timeout}s")
            poller.poll(max(1, math.ceil(left * 1000)))

    def _check(self, what: str) -> None:
        if self._closed:
            raise TransportError(f"{what} on a closed channel")
        self._s.drain()
        if self._s.gone:
            raise PeerClosed(self._s.gone)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._s.close()


class ZeromqListener(Listener):
    def __init__(self, s: Sockets, where: str, accept: Callable[[Sockets, float], Channel]):
        self._s, self._where, self._accept = s, where, accept
        self._owned = True

    def accept(self, timeout: float) -> Channel:
        if not self._owned:
            raise TransportError(f"listener on {self._where} is closed")
        channel = self._accept(self._s, time.monotonic() + timeout)
        self._owned = False  # the channel owns the sockets now
        return channel

    def close(self) -> None:
        if self._owned:
            self._owned = False
            self._s.close()


def bind(sock: zmq.Socket[bytes], address: str) -> int:
    """Bind (retrying while a previous channel still releases the port); the bound port."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            sock.bind(address)
            endpoint: bytes = sock.getsockopt(zmq.LAST_ENDPOINT)  # type: ignore[assignment]
            return int(endpoint.rsplit(b":", 1)[1])
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def readable(sock: zmq.Socket[bytes]) -> bool:
    """Whether a message waits, without blocking (and it makes the socket process commands)."""
    events: int = sock.getsockopt(zmq.EVENTS)  # type: ignore[assignment]
    return bool(events & zmq.POLLIN)
