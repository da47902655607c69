"""The transport contract, checked once for every registered transport, variant and mode."""

from __future__ import annotations

import json
import random
import struct
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

import transports
from bench.services.set import ServiceSet
from runtime.local import LocalRuntime
from tests.conformance_pairs import (
    RAW_STREAM_CONNECT,
    SETUP_TIMEOUT,
    Background,
    Lab,
    all_services,
    cells,
    free_port,
    open_container_pair,
    open_pair,
    process_cells,
)
from transports.base import Channel, Endpoint, TransportError, TransportTimeout

pytestmark = pytest.mark.timeout(60)

IO_TIMEOUT = 10.0  # generous: a correct transport never gets near it
SIZES = [1, 2, 63, 64, 1023, 1024, 65535, 65536, 1 << 20]
Cell = tuple[str, str | None, str]
Pair = tuple[Channel, Channel]


def _cell_id(cell: Cell) -> str:
    name, variant, mode = cell
    return "-".join(part for part in (name, variant, mode) if part)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Which (placement, transport, variant, mode) each test runs on.

    A test that takes ``pair`` runs in both placements: two processes on
    loopback, and two real containers on the lab network. Transports that
    need a service (a broker, a database) run only between containers: their
    service lives on the lab network, which the host cannot reach. A test that
    takes ``endpoint`` works in-process, so it gets only the transports that
    can run there.
    """
    if "pair" in metafunc.fixturenames:
        cases = [("containers", c) for c in cells()]
        cases += [("processes", c) for c in process_cells()]
        ids = [f"{placement}-{_cell_id(c)}" for placement, c in cases]
        metafunc.parametrize(("placement", "cell"), cases, ids=ids)
    elif "cell" in metafunc.fixturenames:
        chosen = process_cells() if "endpoint" in metafunc.fixturenames else cells()
        metafunc.parametrize("cell", chosen, ids=[_cell_id(c) for c in chosen])


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    # A short directory of our own: Unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="ipcb-") as shared_dir:
        yield Endpoint(host="127.0.0.1", port=free_port(), shared_dir=shared_dir)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One runtime, lab network and set of service containers for the whole module."""
    with (
        LocalRuntime() as rt,
        rt.network() as net,
        ServiceSet(rt, net, all_services()) as services,
    ):
        yield Lab(rt, net, services)


@pytest.fixture
def pair(request: pytest.FixtureRequest, placement: str, cell: Cell) -> Iterator[Pair]:
    if placement == "processes":
        endpoint = request.getfixturevalue("endpoint")
        with open_pair(*cell, endpoint) as channels:
            yield channels
        return
    with open_container_pair(request.getfixturevalue("lab"), *cell) as channels:
        yield channels


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 7919 + seed).randbytes(size)


def transfer(sender: Channel, receiver: Channel, message: bytes) -> bytes:
    """Send in a thread (a big message may not fit in the buffers) while receiving here."""
    sending = Background(lambda: sender.send(message, IO_TIMEOUT))
    received = receiver.recv(IO_TIMEOUT)
    sending.result(IO_TIMEOUT)
    return received


def echo(first: Channel, second: Channel, message: bytes) -> None:
    there = transfer(first, second, message)
    assert there == message
    back = transfer(second, first, there)
    assert back == message


@pytest.mark.parametrize("size", SIZES)
def test_payload_sizes_round_trip_both_ways(pair: Pair, size: int) -> None:
    server, client = pair
    echo(client, server, payload(size, seed=1))
    echo(server, client, payload(size, seed=2))


@pytest.mark.parametrize(
    "message",
    [
        bytes(range(256)),
        bytes(range(255, -1, -1)) * 257,
        b"\x00" * 4096,
        b"\xff" * 4096,
        b"\r\n\x00\x1a" * 1000,
        struct.pack(">I", 4) + b"abcd",  # looks like a frame of its own
    ],
    ids=["ascending", "descending-x257", "zeros", "ones", "controls", "fake-frame"],
)
def test_every_byte_value_arrives_unchanged(pair: Pair, message: bytes) -> None:
    server, client = pair
    echo(client, server, message)


def test_carries_max_payload(cell: Cell, pair: Pair) -> None:
    server, client = pair
    message = payload(transports.get(cell[0]).max_payload)
    assert transfer(client, server, message) == message


def _send_all(channel: Channel, messages: list[bytes]) -> None:
    for message in messages:
        channel.send(message, IO_TIMEOUT)


@pytest.mark.parametrize("direction", ["client-to-server", "server-to-client"])
def test_messages_arrive_in_order(pair: Pair, direction: str) -> None:
    server, client = pair
    sender, receiver = (client, server) if direction == "client-to-server" else (server, client)
    messages = [i.to_bytes(4, "big") + payload(i % 300, seed=i) for i in range(1000)]
    sending = Background(lambda: _send_all(sender, messages))
    received = [receiver.recv(IO_TIMEOUT) for _ in messages]
    sending.result(IO_TIMEOUT)
    assert received == messages


def _assert_times_out(channel: Channel, timeout: float) -> None:
    began = time.monotonic()
    with pytest.raises(TransportTimeout):
        channel.recv(timeout)
    waited = time.monotonic() - began
    assert timeout * 0.9 <= waited <= timeout + 0.5, f"waited {waited:.3f}s for {timeout}s"


def test_one_way_counting_then_timeout(pair: Pair) -> None:
    server, client = pair
    messages = [payload(64, seed=i) for i in range(500)]
    sending = Background(lambda: _send_all(client, messages))
    received = [server.recv(IO_TIMEOUT) for _ in messages]
    sending.result(IO_TIMEOUT)
    assert received == messages
    _assert_times_out(server, 0.2)
    # A timeout loses nothing: the channel keeps working afterwards.
    echo(client, server, b"after the timeout")


def test_recv_times_out_on_a_quiet_channel(pair: Pair) -> None:
    server, client = pair
    _assert_times_out(client, 0.2)
    _assert_times_out(server, 0.2)
    echo(server, client, b"still alive")


def test_close_is_idempotent(pair: Pair) -> None:
    server, client = pair
    for channel in (client, server, client, server):
        channel.close()


@pytest.mark.parametrize("closer", ["server", "client"])
def test_recv_reports_a_closed_peer_quickly(pair: Pair, closer: str) -> None:
    server, client = pair
    gone, survivor = (server, client) if closer == "server" else (client, server)
    echo(client, server, b"warm up")
    gone.close()
    began = time.monotonic()
    with pytest.raises(TransportError) as caught:
        survivor.recv(5.0)
    assert not isinstance(caught.value, TransportTimeout), "a dead peer looked like silence"
    assert time.monotonic() - began < 2.0


@pytest.mark.parametrize("closer", ["server", "client"])
def test_send_to_a_closed_peer_fails(pair: Pair, closer: str) -> None:
    server, client = pair
    gone, survivor = (server, client) if closer == "server" else (client, server)
    gone.close()
    began = time.monotonic()
    with pytest.raises(TransportError) as caught:
        for _ in range(1000):
            survivor.send(b"x" * 1024, 1.0)
            time.sleep(0.001)  # let the peer's reset arrive
    assert not isinstance(caught.value, TransportTimeout), "a dead peer looked like a slow one"
    assert time.monotonic() - began < 5.0


def test_connect_to_nobody_fails_within_its_timeout(cell: Cell, endpoint: Endpoint) -> None:
    name, variant, mode = cell
    transport = transports.get(name)(variant=variant, mode=mode)
    began = time.monotonic()
    with pytest.raises(TransportError):
        transport.connect(endpoint, 0.5)
    assert time.monotonic() - began <= 0.5 + 0.5


def test_connect_waits_for_a_late_server(cell: Cell, endpoint: Endpoint) -> None:
    name, variant, mode = cell
    cls = transports.get(name)
    connecting = Background(lambda: cls(variant=variant, mode=mode).connect(endpoint, 5.0))
    time.sleep(0.3)
    with (
        cls(variant=variant, mode=mode).listen(endpoint) as listener,
        listener.accept(SETUP_TIMEOUT) as server,
        connecting.result(SETUP_TIMEOUT) as client,
    ):
        echo(client, server, b"late but fine")


def test_settings_and_summary_are_reportable(cell: Cell) -> None:
    name, variant, mode = cell
    cls = transports.get(name)
    settings = cls(variant=variant, mode=mode).settings()
    assert settings["mode"] == mode and settings["variant"] == variant
    json.dumps(settings)
    assert cls.summary and "\n" not in cls.summary


@pytest.mark.parametrize("name", sorted(RAW_STREAM_CONNECT))
def test_corrupt_length_prefix_is_an_error_not_an_allocation(name: str, endpoint: Endpoint) -> None:
    cls = transports.get(name)
    with cls(variant=None, mode="latency").listen(endpoint) as listener:
        accepting = Background(lambda: listener.accept(SETUP_TIMEOUT))
        with RAW_STREAM_CONNECT[name](endpoint) as raw, accepting.result(SETUP_TIMEOUT) as server:
            raw.sendall(struct.pack(">I", 1 << 31) + b"junk")
            began = time.monotonic()
            for _ in range(2):  # and it stays an error: the stream cannot be resynchronised
                with pytest.raises(TransportError) as caught:
                    server.recv(2.0)
                assert not isinstance(caught.value, TransportTimeout)
            assert time.monotonic() - began < 1.0


def test_each_cell_gets_its_own_threads_cleaned_up() -> None:
    # open_pair's accept thread must not outlive the pair it made.
    with tempfile.TemporaryDirectory(prefix="ipcb-") as shared_dir:
        before = threading.active_count()
        endpoint = Endpoint(host="127.0.0.1", port=free_port(), shared_dir=shared_dir)
        with open_pair(*cells()[0], endpoint) as (server, client):
            echo(client, server, b"x")
        assert threading.active_count() == before
