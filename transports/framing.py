"""Length-prefixed messages over a connected stream socket (shared by tcp and uds).

A frame is a 4-byte big-endian length followed by that many bytes.

Hot-path choices, measured on loopback (Python 3.11, Linux 6.1, 2 vCPUs):

* The socket stays in *blocking* mode and timeouts are kernel ``SO_RCVTIMEO``
  / ``SO_SNDTIMEO``, set only when the value changes. A Python-level
  ``settimeout`` makes CPython ``poll()`` before every ``recv``/``send``:
  64 B recv with data waiting cost 3.3 us that way against 1.9 us, send 3.0
  against 1.9 us.
* One ``sendmsg([prefix, message])`` per frame: as fast as ``sendall`` of the
  concatenation for 64 B (TCP 5.1 vs 5.3 us, UDS 1.9 vs 1.9 us) and faster for
  64 KiB (TCP 9.7 vs 11.8 us, UDS 5.9 vs 6.9 us) because nothing is copied.
* ``recv_into`` a reusable 256 KiB buffer and cut out every frame already
  buffered, so a stream of small frames costs well under one syscall each.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import time

from transports.base import Channel, PeerClosed, TransportError, TransportTimeout

HEADER = struct.Struct(">I")
MAX_FRAME = 16 << 20
RECV_BUFFER = 256 << 10
# Compact the buffer before it gets this close to its end, so one recv_into
# can still pull in many small frames.
_MIN_FREE = 16 << 10
_TIMEVAL = struct.Struct("@ll")
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_PEER_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _timeval(timeout: float) -> bytes:
    # Round up to whole microseconds: a zero timeval would mean "wait forever".
    usec = max(1, math.ceil(timeout * 1_000_000))
    return _TIMEVAL.pack(*divmod(usec, 1_000_000))


class FramedSocket(Channel):
    """A :class:`Channel` that owns a connected, blocking stream socket."""

    def __init__(
        self, sock: socket.socket, *, max_frame: int = MAX_FRAME, buffer_size: int = RECV_BUFFER
    ) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._max_frame = max_frame
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._start = 0  # first unread byte in _buf
        self._end = 0  # one past the last received byte in _buf
        self._large: tuple[bytearray, int] | None = None  # a big frame being filled
        self._rcvtimeo = -1.0
        self._sndtimeo = -1.0
        self._broken = ""  # why the stream can no longer be framed, if it cannot
        self._closed = False

    @property
    def sock(self) -> socket.socket:
        return self._sock

    # -- sending -------------------------------------------------------------

    def send(self, message: bytes, timeout: float) -> None:
        size = len(message)
        if size > self._max_frame:
            raise TransportError(f"message of {size} bytes exceeds the {self._max_frame} limit")
        self._check_usable()
        flags = self._arm(socket.SO_SNDTIMEO, timeout) | _SEND_FLAGS
        try:
            sent = self._sock.sendmsg((HEADER.pack(size), message), (), flags)
        except BlockingIOError as exc:
            raise TransportTimeout(f"send not accepted within {timeout}s") from exc
        except OSError as exc:
            raise self._wrap(exc, "send") from exc
        if sent < size + 4:
            self._send_rest(HEADER.pack(size) + message, sent, timeout)

    def _send_rest(self, frame: bytes, sent: int, timeout: float) -> None:
        # Rare: the socket buffer was full. Part of the frame is on the wire, so
        # giving up now would desynchronise the stream; remember that.
        deadline = time.monotonic() + timeout
        view = memoryview(frame)
        while sent < len(frame):
            flags = self._arm(socket.SO_SNDTIMEO, deadline - time.monotonic()) | _SEND_FLAGS
            try:
                sent += self._sock.send(view[sent:], flags)
            except OSError as exc:
                self._broken = "an earlier send stopped mid-frame"
                if isinstance(exc, BlockingIOError):
                    raise TransportTimeout(f"send not accepted within {timeout}s") from exc
                raise self._wrap(exc, "send") from exc

    # -- receiving -----------------------------------------------------------

    def recv(self, timeout: float) -> bytes:
        start, end = self._start, self._end
        if end - start >= 4:
            stop = start + 4 + HEADER.unpack_from(self._buf, start)[0]
            if stop <= end:
                self._start = stop
                return bytes(self._view[start + 4 : stop])
        return self._recv_slow(timeout)

    def _recv_slow(self, timeout: float) -> bytes:
        self._check_usable()
        deadline = time.monotonic() + timeout
        if self._large is not None:
            return self._fill_large(timeout, deadline, timeout)
        wait = timeout  # the first syscall reuses the cached timeout value
        while True:
            avail = self._end - self._start
            need = 4
            if avail >= 4:
                length = HEADER.unpack_from(self._buf, self._start)[0]
                if length > self._max_frame:
                    self._broken = f"peer sent a frame length of {length} bytes"
                    raise TransportError(f"{self._broken}, over the {self._max_frame} limit")
                need = 4 + length
                if avail >= need:
                    return self.recv(timeout)
                if need > len(self._buf):
                    return self._start_large(length, wait, deadline, timeout)
            self._make_room(need)
            self._end += self._recv_into(self._view[self._end :], wait, timeout, 0)
            wait = deadline - time.monotonic()

    def _make_room(self, need: int) -> None:
        start, end, size = self._start, self._end, len(self._buf)
        if start == end:
            self._start = self._end = 0
        elif start + need > size or size - end < _MIN_FREE:
            self._buf[: end - start] = self._view[start:end]
            self._start, self._end = 0, end - start

    def _start_large(self, length: int, wait: float, deadline: float, timeout: float) -> bytes:
        # Frames bigger than the buffer get their own bytearray, filled in place.
        frame = bytearray(length)
        have = self._end - self._start - 4
        frame[:have] = self._view[self._start + 4 : self._end]
        self._start = self._end = 0
        self._large = (frame, have)
        return self._fill_large(wait, deadline, timeout)

    def _fill_large(self, wait: float, deadline: float, timeout: float) -> bytes:
        assert self._large is not None
        frame, have = self._large
        view = memoryview(frame)
        while have < len(frame):
            # MSG_WAITALL lets the kernel gather the rest in one call; kept
            # progress survives a timeout, so the stream stays in step.
            try:
                have += self._recv_into(view[have:], wait, timeout, socket.MSG_WAITALL)
            finally:
                self._large = (frame, have)
            wait = deadline - time.monotonic()
        self._large = None
        return bytes(frame)

    def _recv_into(self, into: memoryview, wait: float, timeout: float, flags: int) -> int:
        flags |= self._arm(socket.SO_RCVTIMEO, wait)
        try:
            count = self._sock.recv_into(into, 0, flags)
        except BlockingIOError as exc:
            raise TransportTimeout(f"no message within {timeout}s") from exc
        except OSError as exc:
            raise self._wrap(exc, "recv") from exc
        if count == 0:
            raise PeerClosed("peer closed the connection")
        return count

    # -- plumbing ------------------------------------------------------------

    def _arm(self, option: int, timeout: float) -> int:
        """Set the kernel timeout for ``option`` if it changed; return extra flags."""
        if timeout <= 0:
            return socket.MSG_DONTWAIT  # poll once rather than "wait forever"
        cached = self._rcvtimeo if option == socket.SO_RCVTIMEO else self._sndtimeo
        if timeout != cached:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, option, _timeval(timeout))
            except OSError as exc:
                raise self._wrap(exc, "setsockopt") from exc
            if option == socket.SO_RCVTIMEO:
                self._rcvtimeo = timeout
            else:
                self._sndtimeo = timeout
        return 0

    def _check_usable(self) -> None:
        if self._closed:
            raise TransportError("channel is closed")
        if self._broken:
            raise TransportError(f"stream is out of step: {self._broken}")

    def _wrap(self, exc: OSError, what: str) -> TransportError:
        if self._closed:
            return TransportError(f"{what} on a closed channel")
        if isinstance(exc, _PEER_GONE):
            return PeerClosed(f"peer went away during {what}: {exc}")
        return TransportError(f"{what} failed: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._start = self._end = 0  # so recv's fast path finds nothing
        self._large = None
        # shutdown() sends FIN even if a forked child still holds the fd.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
