"""What the ``file`` transport promises beyond the conformance suite.

* A reader never sees a torn file, even with 1 MiB files and a reader that
  looks as fast as it can (and the checker does catch torn files when a
  naive writer writes in place, so the test can fail).
* A peer whose process is killed is reported as :class:`PeerClosed` quickly.
* Files are consumed (deleted) in order; the poll interval is recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import PROJECT_ROOT
from transports.base import Endpoint, PeerClosed
from transports.shared_file import FileOptions, SharedFileTransport

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
FILES = 120

# A separate process writes FILES messages of 1 MiB, each a distinct pattern.
WRITER = """
import sys, time
from transports.base import Endpoint
from transports.shared_file import SharedFileTransport
from tests.test_file_transport import pattern
ep = Endpoint(host="x", port=0, shared_dir=sys.argv[1])
ch = SharedFileTransport(variant="poll", mode="throughput").connect(ep, 10.0)
for i in range(int(sys.argv[2])):
    ch.send(pattern(i), 10.0)
print("sent", flush=True)
time.sleep(float(sys.argv[3]))
"""


def pattern(i: int, size: int = MIB) -> bytes:
    """A 1 MiB message unlike any other: a 256-byte ramp starting at ``i``."""
    ramp = bytes((i + k) % 256 for k in range(256)) + i.to_bytes(4, "big")
    return (ramp * (size // len(ramp) + 1))[:size]


def expected_index(data: bytes) -> int:
    return int.from_bytes(data[256:260], "big")


@pytest.fixture
def endpoint(tmp_path: Path) -> Endpoint:
    return Endpoint(host="x", port=0, shared_dir=str(tmp_path))


@pytest.fixture
def writer(endpoint: Endpoint) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, endpoint.shared_dir, str(FILES), "30"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


class TornFileWatcher:
    """Scans an inbox as fast as it can and checks every numbered file it can open."""

    def __init__(self, inbox: str) -> None:
        self.inbox, self.seen = inbox, 0
        self.torn: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir(self.inbox):
                if entry.name.isdigit():
                    self._check(entry.path)

    def _check(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return  # consumed meanwhile
        self.seen += 1
        if len(data) != MIB or data != pattern(expected_index(data)):
            self.torn.append(f"{os.path.basename(path)}: {len(data)} bytes")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_reader_never_sees_a_torn_file(endpoint: Endpoint, writer: subprocess.Popen[bytes]) -> None:
    fast = SharedFileTransport(variant="poll", mode="throughput",
                               options=FileOptions(poll_interval_s=0.0))  # fmt: skip
    with fast.listen(endpoint) as listener, listener.accept(10.0) as server:
        watcher = TornFileWatcher(os.path.join(endpoint.shared_dir, "to-server"))
        try:
            for i in range(FILES):
                data = server.recv(10.0)
                assert len(data) == MIB, f"message {i} has {len(data)} bytes"
                assert data == pattern(i), f"message {i} is not its own pattern"
        finally:
            watcher.stop()
    assert not watcher.torn, f"torn files seen: {watcher.torn[:5]}"
    assert watcher.seen > 0, "the watcher never raced the reader, so it proved nothing"
    assert not os.listdir(os.path.join(endpoint.shared_dir, "to-server")), "consumed files remain"


def test_the_watcher_catches_a_writer_that_writes_in_place(tmp_path: Path) -> None:
    # The control: without write-aside-and-rename, the same watcher sees torn files.
    inbox = tmp_path / "to-server"
    inbox.mkdir()
    watcher = TornFileWatcher(str(inbox))
    try:
        for i in range(5):
            with open(inbox / f"{i:012d}", "wb", buffering=0) as f:
                data = pattern(i)
                for start in range(0, MIB, 64 << 10):
                    f.write(data[start : start + (64 << 10)])
                    time.sleep(0.002)
    finally:
        watcher.stop()
    assert watcher.torn, "a writer in place went unnoticed: the torn-file check cannot fail"


@pytest.mark.parametrize("variant", ["poll", "inotify"])
def test_a_killed_peer_is_reported_quickly(endpoint: Endpoint, variant: str) -> None:
    side = SharedFileTransport(variant=variant, mode="latency")
    with side.listen(endpoint) as listener:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, endpoint.shared_dir, "1", "60"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            with listener.accept(10.0) as server:
                assert server.recv(10.0) == pattern(0)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                began = time.monotonic()
                with pytest.raises(PeerClosed):
                    server.recv(10.0)
                assert time.monotonic() - began < 0.5
        finally:
            proc.kill()
            proc.wait(10)


def test_settings_record_the_polling_and_the_filesystem(endpoint: Endpoint) -> None:
    poll = SharedFileTransport(variant="poll", mode="latency",
                               options=FileOptions(poll_interval_s=0.002))  # fmt: skip
    notify = SharedFileTransport(variant="inotify", mode="latency")
    with poll.listen(endpoint) as listener, notify.connect(endpoint, 5.0), listener.accept(5.0):
        pass
    assert poll.settings()["poll_interval_s"] == 0.002
    assert poll.settings()["shared_dir_fs"]
    assert "poll_interval_s" not in notify.settings()
    assert "inotify" in notify.settings()["wakeup"]
