"""Relaying a foreground container's stdio: pipes, or a pty (``-t``), plus its log.

Everything the container writes reaches the terminal and the record's
``stdout.log``/``stderr.log`` (so ``logs`` works after a foreground run).
With ``-t`` the workload's stdio is the slave of a pty pair and we hold the
master: the terminal goes raw (the pty's own line discipline does the
editing and turns Ctrl-C into SIGINT inside), the window size follows
SIGWINCH, and stdin's EOF becomes one ^D. Single-threaded: one select loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import IO

EOT = b"\x04"


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def relay_pty(master: int, *, interactive: bool, log: IO[bytes] | None) -> None:
    """Terminal ↔ pty master until the container side closes its last slave fd."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    copy_winsize(stdin, master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(stdin, master))
    inputs = [master, stdin] if interactive else [master]
    try:
        with raw_terminal(stdin) if interactive else contextlib.nullcontext():
            while True:
                ready, _, _ = select.select(inputs, [], [])
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave fd is closed
                        return
                    if not data:
                        return
                    _write_all(stdout, data)
                    if log is not None:
                        log.write(data)
                if stdin in ready:
                    data = os.read(stdin, 65536)
                    _write_all(master, data or EOT)
                    if not data:
                        inputs.remove(stdin)
    finally:
        signal.signal(signal.SIGWINCH, previous)


def relay_pipes(
    streams: dict[IO[bytes], int], stdin: IO[bytes] | None, log_dir: Path | None
) -> None:
    """Copy each container stream to its terminal fd (and log) until all reach EOF."""
    logs = {
        s: open(log_dir / f"{'stdout' if fd == 1 else 'stderr'}.log", "ab")  # noqa: SIM115
        for s, fd in streams.items()
    } if log_dir else {}  # fmt: skip
    sources: list[int] = [s.fileno() for s in streams]
    by_fd = {s.fileno(): s for s in streams}
    own_stdin = sys.stdin.fileno() if stdin is not None else None
    if own_stdin is not None:
        sources.append(own_stdin)
    try:
        while any(fd in by_fd for fd in sources):
            ready, _, _ = select.select(sources, [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if fd == own_stdin:
                    assert stdin is not None
                    try:
                        if data:
                            stdin.write(data)
                            stdin.flush()
                        else:
                            stdin.close()
                    except OSError:  # the workload closed its stdin
                        data = b""
                    if not data:
                        sources.remove(fd)
                    continue
                if not data:
                    sources.remove(fd)
                    continue
                stream = by_fd[fd]
                _write_all(streams[stream], data)
                if stream in logs:
                    logs[stream].write(data)
    finally:
        for f in logs.values():
            f.close()
