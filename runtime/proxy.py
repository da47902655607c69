"""Publishing a container port on the host's loopback: a small userland proxy (``-p``).

The host's network namespace gets no bridge, no veth and no firewall rule:
the proxy listens on ``127.0.0.1:<host port>`` in the host namespace, and for
each connection opens a socket *inside* another network namespace (the
lab's, to reach the container's address over the bridge, or the container's
own when it has no network) and relays bytes both ways. A socket belongs to
the namespace it was created in, so one ``setns`` on the accepting thread,
around ``socket()`` only, is all it takes (what ``docker-proxy`` does from
the host side of its bridge). ``setns(CLONE_NEWNET)`` acts on the calling
thread and is allowed in a threaded process (unlike the mount namespace's).

The extra hop costs two socket hops per direction; README.md gives the
measured figure (``ipcbench container bench-proxy``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from typing import Self

from runtime import syscalls

log = logging.getLogger(__name__)


class ProxyError(Exception):
    """The host port could not be bound."""


def socket_in(netns_fd: int) -> socket.socket:
    """A TCP socket created in the network namespace ``netns_fd`` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            syscalls.setns(home, syscalls.CLONE_NEWNET)
    finally:
        os.close(home)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class PortProxy:
    """``127.0.0.1:host_port`` on the host, relayed to ``target`` inside ``netns_path``."""

    def __init__(
        self, *, host_port: int, target: tuple[str, int], netns_path: str, host: str = "127.0.0.1"
    ):
        self.target, self.host = target, host
        self._netns = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._listener = socket.create_server((host, host_port), reuse_port=False)
        except OSError as exc:
            os.close(self._netns)
            raise ProxyError(f"cannot publish {host}:{host_port}: {exc.strerror}") from exc
        self.port = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"proxy:{self.port}")
        self._closed = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket_in(self._netns)
            upstream.settimeout(5)
            upstream.connect(self.target)
            upstream.settimeout(None)
        except OSError as exc:
            log.info("proxy %s -> %s: %s", self.port, self.target, exc)
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._conns.update((client, upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._conns.difference_update((client, upstream))
        client.close()
        upstream.close()

    def close(self) -> None:
        """Stop listening and cut every relayed connection; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        os.close(self._netns)
