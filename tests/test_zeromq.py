"""ZeroMQ specifics: REQ/REP on the wire, TCP_NODELAY, pub/sub joining and loss, silent peers."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from tests.conformance_pairs import SETUP_TIMEOUT, Background, free_port, open_pair
from transports.base import Channel, Endpoint, PeerClosed, TransportTimeout
from transports.zeromq import CLIENT_ID, ZeromqOptions, ZeromqTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def endpoint(tmp_path: os.PathLike[str]) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=free_port(), shared_dir=str(tmp_path))


def test_server_answers_a_plain_req_socket(endpoint: Endpoint) -> None:
    # The reqrep variant's bytes on the wire are REQ/REP's: a real REQ gets its reply.
    with ZeromqTransport(variant="reqrep", mode="latency").listen(endpoint) as listener:
        ctx = zmq.Context()
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.ROUTING_ID, CLIENT_ID)
        req.setsockopt(zmq.RCVTIMEO, 5000)
        req.connect(f"tcp://127.0.0.1:{endpoint.port}")
        try:
            with listener.accept(SETUP_TIMEOUT) as server:
                req.send(b"question")
                assert server.recv(5.0) == b"question"
                server.send(b"answer", 5.0)
                assert req.recv() == b"answer"
        finally:
            ctx.destroy(linger=0)


def test_client_talks_to_a_plain_rep_socket(endpoint: Endpoint) -> None:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.RCVTIMEO, 5000)
    rep.bind(f"tcp://127.0.0.1:{endpoint.port}")
    try:
        with ZeromqTransport(variant="reqrep", mode="latency").connect(endpoint, 5.0) as client:
            client.send(b"question", 5.0)
            assert rep.recv() == b"question"
            rep.send(b"answer")
            assert client.recv(5.0) == b"answer"
    finally:
        ctx.destroy(linger=0)


def _tcp_sockets() -> Iterator[socket.socket]:
    """This process's connected TCP sockets (libzmq's included), as duplicates."""
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = os.dup(int(name))
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            continue
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            try:
                sock.getpeername()
                yield sock
                continue
            except OSError:
                pass
        sock.close()


def tcp_nodelay_flags() -> list[int]:
    flags = []
    for sock in _tcp_sockets():
        with sock:
            flags.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return flags


@pytest.mark.parametrize("variant", ZeromqTransport.variants)
def test_libzmq_sets_tcp_nodelay_on_every_connection(variant: str, endpoint: Endpoint) -> None:
    with open_pair("zeromq", variant, "latency", endpoint) as (server, client):
        client.send(b"x", 5.0)
        assert server.recv(5.0) == b"x"
        flags = tcp_nodelay_flags()
    assert len(flags) >= (2 if variant == "reqrep" else 4)  # both ends of each connection
    assert all(flags), flags


def test_pubsub_delivers_the_first_message_after_connect(endpoint: Endpoint) -> None:
    # No slow joiner: connect/accept return only once the subscriptions are in place.
    for _ in range(5):
        endpoint = Endpoint(host="127.0.0.1", port=free_port(), shared_dir=endpoint.shared_dir)
        with open_pair("zeromq", "pubsub", "latency", endpoint) as (server, client):
            client.send(b"first", 5.0)
            assert server.recv(1.0) == b"first"
            server.send(b"back", 5.0)
            assert client.recv(1.0) == b"back"


def _pair(variant: str, endpoint: Endpoint, opts: ZeromqOptions) -> tuple[Channel, Channel]:
    listener = ZeromqTransport(variant=variant, mode="throughput", options=opts).listen(endpoint)
    accepting = Background(lambda: listener.accept(SETUP_TIMEOUT))
    client = ZeromqTransport(variant=variant, mode="throughput", options=opts).connect(
        endpoint, SETUP_TIMEOUT
    )
    server: Channel = accepting.result(SETUP_TIMEOUT + 1)
    listener.close()
    return server, client


def test_pubsub_drops_at_the_high_water_mark_instead_of_blocking(endpoint: Endpoint) -> None:
    assert not ZeromqTransport.delivers("pubsub") and ZeromqTransport.delivers("pushpull")
    opts = ZeromqOptions(sndhwm=10, rcvhwm=10)
    server, client = _pair("pubsub", endpoint, opts)
    with server, client:
        began = time.monotonic()
        for i in range(20000):
            client.send(i.to_bytes(4, "big") + bytes(1000), 1.0)
        assert time.monotonic() - began < 5.0  # never waited for the slow reader
        received = 0
        with pytest.raises(TransportTimeout):  # drained
            while True:
                server.recv(0.3)
                received += 1
        assert 0 < received < 20000


class _Blackhole:
    """A TCP relay that, once told to, stops forwarding without closing anything."""

    def __init__(self, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        self.silent = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with self.listener:
            while True:
                try:
                    near, _ = self.listener.accept()
                except OSError:
                    return
                far = socket.create_connection(("127.0.0.1", self.target))
                self.sockets += [near, far]
                for a, b in ((near, far), (far, near)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.silent.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_silent_peer_is_found_dead_by_heartbeats(endpoint: Endpoint) -> None:
    # No FIN, no RST: only the ZMTP heartbeat can tell; it must not look like silence.
    opts = ZeromqOptions(heartbeat_ivl_ms=100, heartbeat_timeout_ms=500)
    relay = _Blackhole(endpoint.port)
    via = Endpoint(host="127.0.0.1", port=relay.port, shared_dir=endpoint.shared_dir)
    transport = ZeromqTransport(variant="reqrep", mode="latency", options=opts)
    try:
        with transport.listen(endpoint) as listener:
            accepting = Background(lambda: listener.accept(SETUP_TIMEOUT))
            with transport.connect(via, SETUP_TIMEOUT) as client, accepting.result(6.0) as server:
                client.send(b"ping", 5.0)
                assert server.recv(5.0) == b"ping"
                relay.silent.set()
                began = time.monotonic()
                with pytest.raises(PeerClosed):
                    client.recv(10.0)
                assert time.monotonic() - began < 3.0
    finally:
        relay.close()
