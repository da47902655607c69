"""The benchmark's message: a fixed header inside every payload a transport carries.

Header (32 bytes, little endian)::

    magic u16 | kind u8 | flags u8 | length u32 | seq u64 | sent_ns u64 | crc u32 | reserved u32

``crc`` is CRC-32 over the payload followed by the first 24 header bytes, so
the sender can reuse a precomputed payload CRC (cheap: only 24 bytes are
hashed per message) while the receiver verifies every byte it got. A message
whose CRC does not match is *corrupt*; its sequence number is not trusted.

Payloads are slices of a repeating 0..255 pattern, offset by the sequence
number, so every byte value crosses the transport and a message delivered
under the wrong sequence number fails its check.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_HEAD = struct.Struct("<HBBIQQ")  # the 24 bytes the CRC covers
_CRC = struct.Struct("<II")
HEADER_BYTES = _HEAD.size + _CRC.size
MAGIC = 0x4950  # "IP"

# Kinds of message.
PING, WARMUP, DATA, CREDIT, END, BYE = 1, 2, 3, 4, 5, 6

_PATTERN_PERIOD = 256
_MAX_VARIANTS = 256
_VARIANT_BUDGET = 64 << 20  # bytes of precomputed payloads at most


class Payloads:
    """Precomputed payloads of one size and their CRCs, chosen by sequence number."""

    def __init__(self, size: int):
        self.size = size
        count = max(1, min(_MAX_VARIANTS, _VARIANT_BUDGET // max(size, 1)))
        pattern = bytes(range(_PATTERN_PERIOD)) * (size // _PATTERN_PERIOD + 2)
        self.bodies = [
            pattern[i % _PATTERN_PERIOD : i % _PATTERN_PERIOD + size] for i in range(count)
        ]
        self.crcs = [zlib.crc32(b) for b in self.bodies]

    def encode(self, kind: int, seq: int, sent_ns: int = 0) -> bytes:
        i = seq % len(self.bodies)
        head = _HEAD.pack(MAGIC, kind, 0, self.size, seq, sent_ns)
        return head + _CRC.pack(zlib.crc32(head, self.crcs[i]), 0) + self.bodies[i]


def encode_control(kind: int, seq: int, body: bytes = b"") -> bytes:
    """A small control message (credit, end) carrying ``body``."""
    head = _HEAD.pack(MAGIC, kind, 0, len(body), seq, 0)
    return head + _CRC.pack(zlib.crc32(head, zlib.crc32(body)), 0) + body


@dataclass(frozen=True)
class Decoded:
    kind: int
    seq: int
    sent_ns: int
    ok: bool  # the CRC matched and the lengths agree
    body: bytes


def decode(message: bytes) -> Decoded:
    if len(message) < HEADER_BYTES:
        return Decoded(0, -1, 0, False, b"")
    magic, kind, _, length, seq, sent_ns = _HEAD.unpack_from(message)
    crc, _ = _CRC.unpack_from(message, _HEAD.size)
    body = message[HEADER_BYTES:]
    ok = (
        magic == MAGIC
        and length == len(body)
        and zlib.crc32(message[: _HEAD.size], zlib.crc32(body)) == crc
    )
    return Decoded(kind, seq, sent_ns, ok, body)


def peek_kind(message: bytes) -> int:
    """The kind byte, without verifying anything (for dispatch on the hot path)."""
    return message[2] if len(message) >= HEADER_BYTES else 0


class Tally:
    """Integrity counters for one stream of sequence numbers."""

    def __init__(self) -> None:
        self._seen = bytearray()
        self.received = self.duplicated = self.reordered = self.corrupt = 0
        self.highest = -1

    def record(self, decoded: Decoded) -> None:
        if not decoded.ok:
            self.corrupt += 1
            return
        seq = decoded.seq
        if seq >= len(self._seen):
            self._seen.extend(bytes(max(seq + 1 - len(self._seen), len(self._seen))))
        if self._seen[seq]:
            self.duplicated += 1
            return
        self._seen[seq] = 1
        self.received += 1
        if seq < self.highest:
            self.reordered += 1
        self.highest = max(self.highest, seq)

    def counts(self, sent: int) -> dict[str, int]:
        """The results' ``messages`` block, given how many the other side sent.

        A corrupt message arrived, damaged: it is counted as corrupt, not as
        lost, so that one fault is never counted twice.
        """
        lost = max(0, sent - self.received - self.corrupt)
        return {
            "sent": sent,
            "received": self.received,
            "lost": lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "corrupt": self.corrupt,
        }
