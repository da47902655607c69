"""Deterministic fault injection on the client's send path.

Used by the tests to prove that every integrity counter catches its fault
between real containers: the faults act on the real channel, on measured
(``DATA``) messages chosen by sequence number, never on control messages.

``faults`` maps a kind of fault to the sequence numbers it hits::

    {"drop": [5], "duplicate": [7], "reorder": [9], "corrupt": [11]}

``reorder`` holds message N back and sends it after message N+1.
"""

from __future__ import annotations

from bench import protocol as p
from transports.base import Channel

KINDS = ("drop", "duplicate", "reorder", "corrupt")


class FaultyChannel(Channel):
    def __init__(self, inner: Channel, faults: dict[str, list[int]]):
        unknown = set(faults) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.inner = inner
        self.faults = {kind: set(seqs) for kind, seqs in faults.items()}
        self._held: bytes | None = None

    def _hits(self, kind: str, seq: int) -> bool:
        return seq in self.faults.get(kind, ())

    def send(self, message: bytes, timeout: float) -> None:
        if p.peek_kind(message) != p.DATA:
            self.inner.send(message, timeout)
            return
        seq = p.decode(message).seq
        if self._hits("drop", seq):
            return
        if self._hits("corrupt", seq):
            tail = bytes([message[-1] ^ 0xFF])
            message = message[:-1] + tail
        if self._hits("reorder", seq):
            self._held = message
            return
        self.inner.send(message, timeout)
        if self._hits("duplicate", seq):
            self.inner.send(message, timeout)
        if self._held is not None:
            held, self._held = self._held, None
            self.inner.send(held, timeout)

    def recv(self, timeout: float) -> bytes:
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()
