"""A Unix domain stream socket whose file sits on the volume both containers mount."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass
from typing import Any, ClassVar

from transports.base import Channel, Endpoint, Listener, Options, Transport, TransportError
from transports.framing import MAX_FRAME, RECV_BUFFER, FramedSocket
from transports.rendezvous import StreamListener, connect_stream, connect_with_retry

SOCKET_NAME = "ipcbench.sock"
# No file yet, or a stale file nobody listens on: the server is not up yet.
_RETRY_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN}


@dataclass(frozen=True)
class UdsOptions(Options):
    """Send buffer in bytes; 0 keeps the kernel default (net.core.wmem_default).

    A Unix stream socket charges data in flight to the *sender's* SO_SNDBUF;
    the receive buffer size is not used, so there is no ``rcvbuf``.
    """

    sndbuf: int = 0


class UdsTransport(Transport[UdsOptions]):
    """One SOCK_STREAM Unix socket on the shared volume, 4-byte length prefix per message."""

    name: ClassVar[str] = "uds"
    options_type: ClassVar[type[Options]] = UdsOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "Unix domain stream socket in a directory both containers mount"

    def __init__(self, *, variant: str | None, mode: str, options: UdsOptions | None = None):
        super().__init__(variant=variant, mode=mode, options=options)
        self._effective: dict[str, int] = {}

    def _prepare(self, sock: socket.socket) -> None:
        if self.options.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.sndbuf)

    def _tune(self, sock: socket.socket) -> None:
        self._prepare(sock)  # an accepted socket does not inherit SO_SNDBUF
        self._effective = {
            "so_sndbuf_effective": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        }

    def listen(self, endpoint: Endpoint) -> Listener:
        path = socket_path(endpoint)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _remove_stale(path)
            sock.bind(path)
            inode, owner = os.stat(path).st_ino, os.getpid()
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot listen on unix socket {path}: {exc}") from exc
        return StreamListener(
            sock,
            where=f"unix socket {path}",
            tune=self._tune,
            cleanup=lambda: _unlink_if_ours(path, inode, owner),
            max_frame=MAX_FRAME,
        )

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        path = socket_path(endpoint)
        sock = connect_with_retry(
            lambda remaining: connect_stream(socket.AF_UNIX, path, remaining, self._prepare),
            timeout,
            retryable=lambda exc: exc.errno in _RETRY_ERRNOS,
            where=f"unix socket {path}",
        )
        try:
            self._tune(sock)
        except OSError as exc:
            sock.close()
            raise TransportError(f"tuning the connection to {path}: {exc}") from exc
        return FramedSocket(sock, max_frame=MAX_FRAME)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "framing": "4-byte big-endian length prefix",
            "recv_buffer": RECV_BUFFER,
            "max_frame": MAX_FRAME,
            **self._effective,
        }


def socket_path(endpoint: Endpoint) -> str:
    return os.path.join(endpoint.shared_dir, SOCKET_NAME)


def _remove_stale(path: str) -> None:
    # Only a socket is ours to remove; anything else there is a mistake to report.
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
        os.unlink(path)


def _unlink_if_ours(path: str, inode: int, owner: int) -> None:
    # A later server may have bound a new socket at the same path, and a forked
    # child closing its copy of the listener must not pull the file away.
    if os.getpid() == owner and os.lstat(path).st_ino == inode:
        os.unlink(path)
