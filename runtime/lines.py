"""Reading lines from a pipe with a deadline, without threads."""

from __future__ import annotations

import os
import select
import time
from typing import IO


class LineReader:
    """Whole lines from ``stream``; raises TimeoutError at the deadline, EOFError at the end."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.buffer = stream, b""

    def next(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.stream], [], [], remaining)
            if ready:
                chunk = os.read(self.stream.fileno(), 65536)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line
