"""How the two sides of a stream transport find each other (shared by tcp and uds).

The server binds and accepts one connection; the client retries with a short
doubling backoff while the server is not up yet, until its timeout.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from transports.base import Listener, TransportError, TransportTimeout
from transports.framing import MAX_FRAME, FramedSocket

# The client's first retry comes soon (containers start within milliseconds of
# each other), later ones back off so a slow server is not hammered.
FIRST_BACKOFF = 0.005
MAX_BACKOFF = 0.1


class StreamListener(Listener):
    """A bound, listening stream socket that hands out :class:`FramedSocket` channels."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        where: str,
        tune: Callable[[socket.socket], None],
        cleanup: Callable[[], None] | None = None,
        max_frame: int = MAX_FRAME,
    ) -> None:
        self._sock = sock
        self._where = where
        self._tune = tune
        self._cleanup = cleanup
        self._max_frame = max_frame
        self._closed = False

    def accept(self, timeout: float) -> FramedSocket:
        if self._closed:
            raise TransportError(f"listener on {self._where} is closed")
        try:
            self._sock.settimeout(max(timeout, 0.0))
            conn, _ = self._sock.accept()
        except (TimeoutError, BlockingIOError) as exc:
            raise TransportTimeout(f"no client on {self._where} within {timeout}s") from exc
        except OSError as exc:
            raise TransportError(f"accept on {self._where} failed: {exc}") from exc
        try:
            self._tune(conn)
        except OSError as exc:
            conn.close()
            raise TransportError(f"tuning the connection on {self._where}: {exc}") from exc
        return FramedSocket(conn, max_frame=self._max_frame)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._cleanup is not None:
            with contextlib.suppress(OSError):
                self._cleanup()


def connect_with_retry(
    attempt: Callable[[float], socket.socket],
    timeout: float,
    *,
    retryable: Callable[[OSError], bool],
    where: str,
) -> socket.socket:
    """Call ``attempt(remaining_seconds)`` until it returns a connected socket.

    Errors that ``retryable`` accepts (the server is not up yet) are retried
    until ``timeout``, then reported as :class:`TransportTimeout`; any other
    error is a :class:`TransportError` at once.
    """
    deadline = time.monotonic() + timeout
    backoff = FIRST_BACKOFF
    while True:
        try:
            return attempt(max(deadline - time.monotonic(), 0.001))
        except OSError as exc:
            if not (isinstance(exc, TimeoutError) or retryable(exc)):
                raise TransportError(f"cannot connect to {where}: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportTimeout(
                    f"nothing accepted a connection at {where} within {timeout}s (last: {exc})"
                ) from exc
        time.sleep(min(backoff, remaining))
        backoff = min(backoff * 2, MAX_BACKOFF)


def connect_stream(
    family: int,
    address: tuple[Any, ...] | str,
    timeout: float,
    prepare: Callable[[socket.socket], None],
) -> socket.socket:
    """One connection attempt: a new socket, ``prepare``d, connected within ``timeout``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        prepare(sock)
        sock.settimeout(timeout)
        sock.connect(address)
        sock.setblocking(True)
    except BaseException:
        sock.close()
        raise
    return sock


def resolve_once(host: str, deadline: float) -> str:
    """The server's address, resolved once and retried until ``deadline``.

    The server container may not be in the lab's hosts file yet. Resolving once
    keeps name lookups off every later connection (HTTP's new-connection
    variant, libzmq's reconnects).
    """
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TransportTimeout(f"cannot resolve {host}: {exc}") from exc
            time.sleep(0.01)
