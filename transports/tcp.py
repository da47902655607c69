"""TCP between the containers: length-prefixed frames over one connection."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

from transports.base import Channel, Endpoint, Listener, Options, Transport, TransportError
from transports.framing import MAX_FRAME, RECV_BUFFER, FramedSocket
from transports.rendezvous import StreamListener, connect_stream, connect_with_retry

# The server container may not be up or resolvable yet; these mean "try again".
_RETRY_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}


@dataclass(frozen=True)
class TcpOptions(Options):
    """Socket buffer sizes in bytes; 0 leaves the kernel's autotuning in charge."""

    sndbuf: int = 0
    rcvbuf: int = 0


class TcpTransport(Transport[TcpOptions]):
    """One TCP connection, TCP_NODELAY on both ends, 4-byte length prefix per message."""

    name: ClassVar[str] = "tcp"
    options_type: ClassVar[type[Options]] = TcpOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "TCP over the container network, one length-prefixed stream"

    def __init__(self, *, variant: str | None, mode: str, options: TcpOptions | None = None):
        super().__init__(variant=variant, mode=mode, options=options)
        self._effective: dict[str, int] = {}

    def _prepare(self, sock: socket.socket) -> None:
        """Options that must be set before listen/connect to shape the handshake."""
        # Buffer sizes must precede the handshake so the window scale fits them.
        if self.options.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.sndbuf)
        if self.options.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.options.rcvbuf)

    def _tune(self, sock: socket.socket) -> None:
        """Options of a connected socket, on both ends."""
        # Every send is a whole message the peer waits for: never hold it back
        # for Nagle. With Nagle off, delayed ACKs cannot stall the sender, and
        # replies/credits carry the ACK, so TCP_QUICKACK is not set: it is
        # not sticky on Linux (re-arming it costs a syscall per recv) and extra
        # pure ACKs only add work.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._effective = {
            "so_sndbuf_effective": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            "so_rcvbuf_effective": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        }

    def listen(self, endpoint: Endpoint) -> Listener:
        where = f"tcp 0.0.0.0:{endpoint.port}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # A previous cell's connection in TIME_WAIT must not block the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._prepare(sock)
            sock.bind(("0.0.0.0", endpoint.port))
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot listen on {where}: {exc}") from exc
        return StreamListener(sock, where=where, tune=self._tune, max_frame=MAX_FRAME)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        where = f"tcp {endpoint.host}:{endpoint.port}"
        sock = connect_with_retry(
            lambda remaining: self._attempt(endpoint, remaining),
            timeout,
            retryable=_retryable,
            where=where,
        )
        try:
            self._tune(sock)
        except OSError as exc:
            sock.close()
            raise TransportError(f"tuning the connection to {where}: {exc}") from exc
        return FramedSocket(sock, max_frame=MAX_FRAME)

    def _attempt(self, endpoint: Endpoint, timeout: float) -> socket.socket:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        last: OSError = OSError(errno.EHOSTUNREACH, f"no address for {endpoint.host}")
        for family, _, _, _, address in infos:
            try:
                return connect_stream(family, address, timeout, self._prepare)
            except OSError as exc:
                last = exc
        raise last

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "tcp_nodelay": True,
            "tcp_quickack": False,
            "framing": "4-byte big-endian length prefix",
            "recv_buffer": RECV_BUFFER,
            "max_frame": MAX_FRAME,
            **self._effective,
        }


def _retryable(exc: OSError) -> bool:
    return isinstance(exc, socket.gaierror) or exc.errno in _RETRY_ERRNOS
