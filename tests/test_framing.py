"""Edge cases of the length-prefixed framing, driven byte by byte from a raw socket."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.conformance_pairs import Background
from transports.base import PeerClosed, TransportError, TransportTimeout
from transports.framing import HEADER, RECV_BUFFER, FramedSocket

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0


class CountingSocket(socket.socket):
    """A socket that counts its recv_into calls (socket.socket has __slots__)."""

    recv_calls = 0

    def recv_into(self, *args: object, **kwargs: object) -> int:
        type(self).recv_calls += 1
        return super().recv_into(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def ends() -> Iterator[tuple[FramedSocket, socket.socket]]:
    """A framed channel and the raw socket at the other end of it."""
    mine, raw = socket.socketpair()
    CountingSocket.recv_calls = 0
    channel = FramedSocket(CountingSocket(fileno=mine.detach()))
    raw.settimeout(WAIT)
    with channel, raw:
        yield channel, raw


def frame(message: bytes) -> bytes:
    return HEADER.pack(len(message)) + message


def later(raw: socket.socket, data: bytes, delay: float = 0.05) -> Background:
    def send() -> None:
        time.sleep(delay)  # long enough for the reader to block in recv first
        raw.sendall(data)

    return Background(send)


def test_zero_length_messages(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    channel.send(b"", WAIT)
    assert raw.recv(100) == b"\x00\x00\x00\x00"
    raw.sendall(frame(b"") + frame(b"a") + frame(b""))
    assert [channel.recv(WAIT) for _ in range(3)] == [b"", b"a", b""]


def test_many_frames_in_one_recv(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    messages = [random.Random(i).randbytes(i % 40) for i in range(1000)]
    raw.sendall(b"".join(frame(m) for m in messages))
    assert [channel.recv(WAIT) for _ in messages] == messages
    assert CountingSocket.recv_calls <= 2, "small buffered frames should not cost a syscall each"


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 9])
def test_frame_split_across_recvs(ends: tuple[FramedSocket, socket.socket], cut: int) -> None:
    channel, raw = ends
    data = frame(b"split message")
    raw.sendall(data[:cut])
    arriving = later(raw, data[cut:])
    assert channel.recv(WAIT) == b"split message"
    arriving.result(WAIT)
    assert CountingSocket.recv_calls == 2


def test_frames_straddling_the_buffer_end(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    sizes = [100_000, 70_000, 90_000, 3, RECV_BUFFER - 4, RECV_BUFFER, 300_000, 5, 1 << 20]
    messages = [random.Random(s).randbytes(s) for s in sizes]
    sending = Background(lambda: raw.sendall(b"".join(frame(m) for m in messages)))
    assert [channel.recv(WAIT) for _ in messages] == messages
    sending.result(WAIT)


@pytest.mark.parametrize("size", [20, 1 << 20], ids=["small", "bigger-than-buffer"])
def test_timeout_mid_frame_loses_nothing(
    ends: tuple[FramedSocket, socket.socket], size: int
) -> None:
    channel, raw = ends
    message = random.Random(size).randbytes(size)
    data = frame(message)
    half = len(data) // 2
    sending = Background(lambda: raw.sendall(data[:half]))
    with pytest.raises(TransportTimeout):
        channel.recv(0.1)
    sending.result(WAIT)
    arriving = later(raw, data[half:] + frame(b"next"))
    assert channel.recv(WAIT) == message
    assert channel.recv(WAIT) == b"next"
    arriving.result(WAIT)


def test_tiny_and_zero_timeouts_do_not_mean_forever(
    ends: tuple[FramedSocket, socket.socket],
) -> None:
    channel, raw = ends
    for timeout in (0.0, -1.0, 1e-9, 1e-4):
        began = time.monotonic()
        with pytest.raises(TransportTimeout):
            channel.recv(timeout)
        assert time.monotonic() - began < 0.5
    raw.sendall(frame(b"ready"))
    time.sleep(0.05)
    assert channel.recv(0.0) == b"ready"


def test_oversize_length_is_an_error(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    raw.sendall(struct.pack(">I", 0xFFFFFFFF))
    for _ in range(2):
        with pytest.raises(TransportError) as caught:
            channel.recv(WAIT)
        assert not isinstance(caught.value, TransportTimeout)


def test_send_refuses_oversize_and_stays_usable() -> None:
    mine, raw = socket.socketpair()
    with FramedSocket(mine, max_frame=1024) as channel, raw:
        with pytest.raises(TransportError):
            channel.send(b"x" * 1025, WAIT)
        channel.send(b"y" * 1024, WAIT)
        raw.settimeout(WAIT)
        assert raw.recv(2000) == frame(b"y" * 1024)


def test_eof_mid_frame_is_peer_closed(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    raw.sendall(frame(b"whole")[:6])
    raw.shutdown(socket.SHUT_WR)
    with pytest.raises(PeerClosed):
        channel.recv(WAIT)


def test_partial_sends_are_completed(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    channel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    message = random.Random(3).randbytes(4 << 20)
    sending = Background(lambda: channel.send(message, WAIT))
    received = bytearray()
    while len(received) < len(message) + 4:
        received += raw.recv(1 << 16)
    sending.result(WAIT)
    assert bytes(received) == frame(message)


def test_send_timeout_then_stream_is_marked_out_of_step(
    ends: tuple[FramedSocket, socket.socket],
) -> None:
    channel, _raw = ends
    channel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    began = time.monotonic()
    with pytest.raises(TransportTimeout):
        channel.send(b"z" * (4 << 20), 0.2)  # nobody reads: only part of it fits
    assert time.monotonic() - began < 0.2 + 0.5
    with pytest.raises(TransportError, match="out of step"):
        channel.send(b"more", WAIT)


def test_use_after_close_is_an_error(ends: tuple[FramedSocket, socket.socket]) -> None:
    channel, raw = ends
    raw.sendall(frame(b"buffered") * 2)
    assert channel.recv(WAIT) == b"buffered"
    channel.close()
    channel.close()
    with pytest.raises(TransportError):
        channel.recv(WAIT)
    with pytest.raises(TransportError):
        channel.send(b"x", WAIT)
