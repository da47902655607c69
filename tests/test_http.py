"""HTTP specifics: what goes on the wire, connections per request, Nagle off, TIME_WAIT side."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.conformance_pairs import SETUP_TIMEOUT, Background, free_port
from tests.test_zeromq import tcp_nodelay_flags
from transports.base import Endpoint
from transports.http_api import HttpTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def endpoint(tmp_path: os.PathLike[str]) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=free_port(), shared_dir=str(tmp_path))


def _read_request(conn: socket.socket) -> tuple[str, bytes]:
    conn.settimeout(5.0)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    for line in text.split("\r\n"):
        if line.lower().startswith("content-length:"):
            while len(body) < int(line.split(":")[1]):
                body += conn.recv(65536)
    return text, body


@pytest.mark.parametrize("variant", HttpTransport.variants)
def test_requests_carry_an_exact_length_and_nothing_else(variant: str, endpoint: Endpoint) -> None:
    listener = socket.create_server(("127.0.0.1", endpoint.port))
    connecting = Background(lambda: HttpTransport(variant=variant, mode="latency").connect(
        endpoint, SETUP_TIMEOUT))  # fmt: skip
    conn, _ = listener.accept()
    hello, _ = _read_request(conn)
    assert hello.startswith("POST /hello HTTP/1.1")
    closing = variant == "new-connection"
    conn.sendall(b"HTTP/1.1 204 No Content\r\n" + b"Connection: close\r\n" * closing + b"\r\n")
    client = connecting.result(SETUP_TIMEOUT)
    try:
        if closing:
            conn.close()
        client.send(b"\x00abc\r\n", 5.0)
        if closing:
            conn, _ = listener.accept()
        head, body = _read_request(conn)
        lines = [line.lower() for line in head.split("\r\n")]
        assert lines[0] == "post /msg http/1.1"
        assert "content-length: 6" in lines and "content-type: application/octet-stream" in lines
        assert not any(h.startswith(("expect", "transfer-encoding")) for h in lines)
        assert ("connection: close" in lines) == (variant == "new-connection")
        assert body == b"\x00abc\r\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert client.recv(5.0) == b"ok"
    finally:
        conn.close()
        listener.close()
        client.close()


def _round_trips(variant: str, endpoint: Endpoint, count: int) -> HttpTransport:
    server_side = HttpTransport(variant=variant, mode="latency")
    with server_side.listen(endpoint) as listener:
        accepting = Background(lambda: listener.accept(SETUP_TIMEOUT))
        client = HttpTransport(variant=variant, mode="latency").connect(endpoint, SETUP_TIMEOUT)
        with client, accepting.result(SETUP_TIMEOUT) as server:
            for i in range(count):
                client.send(i.to_bytes(4, "big"), 5.0)
                server.send(server.recv(5.0), 5.0)
                assert client.recv(5.0) == i.to_bytes(4, "big")
            assert all(tcp_nodelay_flags())  # client (urllib3) and server (http.server) ends
    return server_side


@pytest.mark.parametrize(("variant", "connections"), [("keepalive", 1), ("new-connection", 51)])
def test_connections_per_request(variant: str, connections: int, endpoint: Endpoint) -> None:
    server_side = _round_trips(variant, endpoint, 50)
    settings = server_side.settings()
    # new-connection: the hello and each POST on a connection of its own (the
    # goodbye races the close, so it may or may not be counted).
    assert settings["server_connections"] in (connections, connections + 1)
    assert settings["server_tcp_nodelay"] == 1


def _time_wait(port: int) -> tuple[int, int]:
    """TIME_WAIT sockets on the server's side and on the client's side of ``port``."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True,
                         check=True, timeout=10).stdout  # fmt: skip
    server = client = 0
    for line in out.splitlines():
        local, peer = line.split()[-2:]
        server += local.endswith(f":{port}")
        client += peer.endswith(f":{port}")
    return server, client


def test_new_connections_leave_time_wait_on_the_server(endpoint: Endpoint) -> None:
    _round_trips("new-connection", endpoint, 200)
    server, client = _time_wait(endpoint.port)
    assert server >= 200 and client == 0, (server, client)
