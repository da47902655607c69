"""How the conformance suite obtains a connected (server, client) pair of channels.

The test bodies only see two :class:`Channel` objects, so another placement
(the two sides in real containers) can replace :func:`open_pair` without
touching them. This placement runs both sides in one process: the server
accepts in a thread while the client connects on loopback / a temp dir.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import transports
from bench.services.set import ServiceSet
from runtime import PROJECT_ROOT
from runtime.container import Container, ContainerSpec, Volume
from runtime.local import LocalRuntime
from runtime.network import LabNetwork
from transports.base import (
    MODES,
    Channel,
    Endpoint,
    PeerClosed,
    TransportError,
    TransportTimeout,
)

SETUP_TIMEOUT = 5.0


def cells() -> list[tuple[str, str | None, str]]:
    """Every (transport, variant, mode) the registry offers, skipping impossible modes."""
    found = []
    for name in transports.names():
        cls = transports.get(name)
        for variant in cls.variants or (None,):
            found += [(name, variant, mode) for mode in MODES if cls.how(variant, mode)]
    return found


def process_cells() -> list[tuple[str, str | None, str]]:
    """The cells whose transport can run in two plain processes (it needs no service)."""
    return [c for c in cells() if not transports.get(c[0]).services]


def all_services() -> list[str]:
    """Every service some registered transport needs."""
    names = (n for name in transports.names() for n in transports.get(name).services)
    return list(dict.fromkeys(names))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Background:
    """Run ``fn`` in a thread; :meth:`result` re-raises its exception in the caller."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background call still running after {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value


@contextmanager
def open_pair(
    transport_name: str, variant: str | None, mode: str, endpoint: Endpoint
) -> Iterator[tuple[Channel, Channel]]:
    """Yield ``(server_channel, client_channel)``, connected; both closed on exit."""
    cls = transports.get(transport_name)
    server_side = cls(variant=variant, mode=mode)
    client_side = cls(variant=variant, mode=mode)
    with server_side.listen(endpoint) as listener:
        accepting = Background(lambda: listener.accept(SETUP_TIMEOUT))
        client = client_side.connect(endpoint, SETUP_TIMEOUT)
        try:
            server: Channel = accepting.result(SETUP_TIMEOUT + 1)
        except BaseException:
            client.close()
            raise
    with server, client:
        yield server, client


# Transports that frame messages over a plain stream socket, and how to open a
# raw connection to their listener (for feeding them corrupt frames).
RAW_STREAM_CONNECT: dict[str, Callable[[Endpoint], socket.socket]] = {
    "tcp": lambda ep: socket.create_connection(("127.0.0.1", ep.port), timeout=SETUP_TIMEOUT),
    "uds": lambda ep: _unix_connect(os.path.join(ep.shared_dir, "ipcbench.sock")),
}


def _unix_connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(SETUP_TIMEOUT)
    sock.connect(path)
    return sock


# -- the second placement: each side in its own real container ------------------

PEER_ERRORS = {"TransportTimeout": TransportTimeout, "PeerClosed": PeerClosed}
CONTAINER_ENDPOINT = Endpoint(host="server", port=7000, shared_dir="/shared")


class PeerChannel(Channel):
    """A channel whose real end lives in a container (``tests/container_peer.py``).

    Each call is one command line to the peer and one answer back; the peer's
    transport errors come back as the same exception classes.
    """

    def __init__(self, container: Container) -> None:
        assert container.stdin is not None and container.stdout is not None
        self._in, self._out = container.stdin, container.stdout
        self._lock = threading.Lock()
        self._closed = False

    def answer(self) -> Any:
        line = self._out.readline()
        if not line:
            raise PeerClosed("the container peer exited")
        answer = json.loads(line)
        if "error" in answer:
            raise PEER_ERRORS.get(answer["error"], TransportError)(answer["message"])
        return answer["ok"]

    def _call(self, **command: Any) -> Any:
        with self._lock:
            self._in.write((json.dumps(command) + "\n").encode())
            self._in.flush()
            return self.answer()

    def send(self, message: bytes, timeout: float) -> None:
        self._call(op="send", data=base64.b64encode(message).decode(), timeout=timeout)

    def recv(self, timeout: float) -> bytes:
        data: str = self._call(op="recv", timeout=timeout)
        return base64.b64decode(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._call(op="close")


@dataclass
class Lab:
    rt: LocalRuntime
    net: LabNetwork
    services: ServiceSet


@contextmanager
def open_container_pair(
    lab: Lab, transport_name: str, variant: str | None, mode: str
) -> Iterator[tuple[Channel, Channel]]:
    """Yield ``(server_channel, client_channel)`` whose ends run in two containers.

    The services the transport needs are (re)started if needed and reset, as
    for a benchmark cell, and their addresses given to both ends.
    """
    rt, net = lab.rt, lab.net
    index = next(_counter)
    volume = rt.volume(f"conformance-{index}")
    needed = transports.get(transport_name).services
    addresses = {name: lab.services.started[name].ensure(index) for name in needed}
    endpoint = {**vars(CONTAINER_ENDPOINT), "services": addresses}
    peers = []
    try:
        for role in ("server", "client"):
            spec = {
                "role": role,
                "transport": transport_name,
                "variant": variant,
                "mode": mode,
                "endpoint": endpoint,
                "timeout": SETUP_TIMEOUT,
            }
            container = rt.container(
                ContainerSpec(
                    name=role,
                    command=(sys.executable, "-m", "tests.container_peer", json.dumps(spec)),
                    volumes=(Volume(str(volume), CONTAINER_ENDPOINT.shared_dir),),
                    cwd=str(PROJECT_ROOT),
                    stdin_pipe=True,
                    stdout_pipe=True,
                ),
                net,
            )
            peers.append(container)
            container.start()
            if role == "server":
                PeerChannel(container).answer()  # listening: the client may connect
        channels = [PeerChannel(c) for c in peers]
        for channel in channels:
            channel.answer()  # connected
        yield channels[0], channels[1]
    finally:
        for container in peers:
            container.remove(grace=1.0)


_counter = itertools.count()
