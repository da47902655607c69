"""Messages as files in a directory both containers mount, one directory per direction.

Layout under ``Endpoint.shared_dir``::

    to-server/000000000042   a message, named by its zero-padded sequence number
    to-client/...            the mirrored direction (replies, credits)
    tmp/                     where a file is written before it is renamed into place
    server.lock, client.lock each side's presence: held under flock() while it lives

A writer writes ``tmp/<side>.part`` and ``rename()``s it to the next name:
rename is atomic, so a reader never sees a half-written file. The reader
opens the *next expected name* directly (one ``open`` that fails with ENOENT
when nothing is there) rather than scanning the directory, reads, unlinks.
Measured on this host (ext4, Python 3.11): a failed ``open`` costs ~1.5 us,
``os.scandir`` of the empty directory ~4 us, and a scan grows with every
file waiting; a direct open also yields the messages in order by construction.

No ``fsync``: both containers share one kernel and page cache, so renamed
data is visible to the reader at once; fsync only buys crash durability,
which IPC does not need, at a cost of milliseconds per message on a disk.

A file transport has no connection, so presence is a lock: each side holds
an exclusive ``flock`` on its lock file (per open file description, so it
also works between two threads of one process); the kernel drops it when the
side closes or its process dies. A side that would otherwise wait checks
whether it can take the peer's lock: if it can, the peer is gone
(:class:`PeerClosed`). The ``inotify`` variant also watches the peer's lock
file for close events, so a peer that exits wakes it at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import math
import os
import select
import struct
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from transports.base import (
    Channel,
    Endpoint,
    Listener,
    Options,
    PeerClosed,
    Transport,
    TransportError,
    TransportTimeout,
)

DIRS = {"server": "to-server", "client": "to-client"}
NAME_DIGITS = 12
CONNECT_BACKOFF = (0.001, 0.02)  # first and largest sleep while the server is not up


@dataclass(frozen=True)
class FileOptions(Options):
    """``poll_interval_s``: the ``poll`` variant's sleep between looks for the next file.

    ``peer_check_s``: how often a waiting (or sending) side checks the peer's lock.
    """

    poll_interval_s: float = 0.001
    peer_check_s: float = 0.05


class SharedFileTransport(Transport[FileOptions]):
    """One file per message, written aside and renamed into the peer's directory."""

    name: ClassVar[str] = "file"
    variants: ClassVar[tuple[str, ...]] = ("poll", "inotify")
    options_type: ClassVar[type[Options]] = FileOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "one file per message on a shared volume, renamed into place"

    def __init__(self, *, variant: str | None, mode: str, options: FileOptions | None = None):
        super().__init__(variant=variant, mode=mode, options=options)
        self._fs = ""

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        if mode == "latency":
            return "request files into to-server/, replies as files in the mirrored to-client/"
        return "one-way stream of files; credits come back as files in to-client/"

    def listen(self, endpoint: Endpoint) -> Listener:
        root = endpoint.shared_dir
        try:
            for sub in (*DIRS.values(), "tmp"):
                os.makedirs(os.path.join(root, sub), exist_ok=True)
            lock = _hold_lock(root, "server")
        except OSError as exc:
            raise TransportError(f"cannot set up the shared directory {root}: {exc}") from exc
        return FileListener(self, root, lock)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        root = endpoint.shared_dir
        deadline = time.monotonic() + timeout
        backoff = CONNECT_BACKOFF[0]
        while not _server_up(os.path.join(root, "server.lock")):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportTimeout(f"no server holds {root}/server.lock after {timeout}s")
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, CONNECT_BACKOFF[1])
        try:
            lock = _hold_lock(root, "client")
        except OSError as exc:
            raise TransportError(f"cannot join the shared directory {root}: {exc}") from exc
        try:
            return self._channel(root, "client", lock)
        except OSError as exc:
            os.close(lock)
            raise TransportError(f"cannot open the channel in {root}: {exc}") from exc

    def _channel(self, root: str, side: str, lock: int) -> FileChannel:
        self._fs = filesystem(root)
        peer = "client" if side == "server" else "server"
        inbox = os.path.join(root, DIRS[side])
        peer_lock = os.path.join(root, f"{peer}.lock")
        waiter: SleepWait | InotifyWait
        if self.variant == "inotify":
            waiter = InotifyWait(inbox, peer_lock)
        else:
            waiter = SleepWait(self.options.poll_interval_s)
        return FileChannel(
            inbox=inbox,
            outbox=os.path.join(root, DIRS[peer]),
            scratch=os.path.join(root, "tmp", f"{side}.part"),
            lock=lock,
            peer_lock=peer_lock,
            waiter=waiter,
            peer_check_s=self.options.peer_check_s,
        )

    def settings(self) -> dict[str, Any]:
        out = {
            **super().settings(),
            "write": "tmp/<side>.part then rename(2) into the peer's directory",
            "read": "open the next sequence name directly (no directory scan), then unlink",
            "fsync": "off: same kernel and page cache; durability is not needed for IPC",
            "presence": "flock on <side>.lock, checked by the peer when it waits",
            "peer_check": "also on every wake-up without a message"
            if self.variant == "inotify"
            else "every peer_check_s while waiting or sending",
        }
        if self._fs:
            out["shared_dir_fs"] = self._fs  # the volume's filesystem sets most of the cost
        if self.variant == "inotify":
            del out["poll_interval_s"]
            out["wakeup"] = "inotify IN_MOVED_TO on the inbox, IN_CLOSE_* on the peer's lock"
        return out


class FileListener(Listener):
    def __init__(self, transport: SharedFileTransport, root: str, lock: int) -> None:
        self._transport, self._root, self._lock = transport, root, lock

    def accept(self, timeout: float) -> Channel:
        if self._lock < 0:
            raise TransportError("listener is closed")
        deadline = time.monotonic() + timeout
        client = os.path.join(self._root, "client.lock")
        while not os.path.exists(client):  # renamed into place already locked
            if time.monotonic() >= deadline:
                raise TransportTimeout(f"no client joined {self._root} within {timeout}s")
            time.sleep(0.001)
        try:
            channel = self._transport._channel(self._root, "server", self._lock)
        except OSError as exc:
            raise TransportError(f"cannot open the channel in {self._root}: {exc}") from exc
        self._lock = -1  # the channel holds the presence lock now
        return channel

    def close(self) -> None:
        if self._lock >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = -1


class FileChannel(Channel):
    def __init__(self, *, inbox: str, outbox: str, scratch: str, lock: int, peer_lock: str,
                 waiter: SleepWait | InotifyWait, peer_check_s: float) -> None:  # fmt: skip
        self._inbox, self._outbox, self._scratch = inbox, outbox, scratch
        self._lock, self._waiter, self._peer_check_s = lock, waiter, peer_check_s
        # Kept open: re-opening it for every check would itself raise close events.
        self._peer = os.open(peer_lock, os.O_RDONLY | os.O_CLOEXEC)
        self._next_in = self._next_out = 0
        self._checked = time.monotonic()
        self._closed = False

    def send(self, message: bytes, timeout: float) -> None:
        # A local write does not block for long; ``timeout`` has nothing to bound.
        self._usable()
        if time.monotonic() - self._checked >= self._peer_check_s and not self._peer_alive():
            raise PeerClosed("the peer released its lock: it closed or exited")
        target = os.path.join(self._outbox, f"{self._next_out:0{NAME_DIGITS}d}")
        try:
            fd = os.open(self._scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view, done = memoryview(message), 0
                while done < len(view):
                    done += os.write(fd, view[done:])
            finally:
                os.close(fd)
            os.rename(self._scratch, target)
        except OSError as exc:
            raise TransportError(f"writing {target}: {exc}") from exc
        self._next_out += 1

    def recv(self, timeout: float) -> bytes:
        self._usable()
        deadline, woken = time.monotonic() + timeout, False
        while True:
            message = self._take()
            if message is not None:
                return message
            now = time.monotonic()
            if (woken or now - self._checked >= self._peer_check_s) and not self._peer_alive():
                message = self._take()  # written just before the peer left: still delivered
                if message is not None:
                    return message
                raise PeerClosed("the peer released its lock: it closed or exited")
            if now >= deadline:
                raise TransportTimeout(f"no message in {self._inbox} within {timeout}s")
            woken = self._waiter.wait(min(deadline, self._checked + self._peer_check_s) - now)

    def _take(self) -> bytes | None:
        path = os.path.join(self._inbox, f"{self._next_in:0{NAME_DIGITS}d}")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(f"opening {path}: {exc}") from exc
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size)
            while len(data) < size:  # short only for huge files; be safe
                data += os.read(fd, size - len(data))
            os.unlink(path)
        except OSError as exc:
            raise TransportError(f"reading {path}: {exc}") from exc
        finally:
            os.close(fd)
        self._next_in += 1
        return data

    def _peer_alive(self) -> bool:
        self._checked = time.monotonic()
        return _locked(self._peer, "the peer's lock")

    def _usable(self) -> None:
        if self._closed:
            raise TransportError("channel is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._waiter.close()
        for fd in (self._peer, self._lock):  # closing our lock tells the peer we left
            with contextlib.suppress(OSError):
                os.close(fd)


class SleepWait:
    """The ``poll`` variant: look again after ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self._interval = interval

    def wait(self, seconds: float) -> bool:
        time.sleep(max(0.0, min(seconds, self._interval)))
        return False

    def close(self) -> None:
        pass


_IN_MOVED_TO, _IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE = 0x80, 0x08, 0x10


class InotifyWait:
    """The ``inotify`` variant: sleep until a file is renamed in, or the peer's lock closes.

    Events are only wake-ups (the reader then opens the next name), so they
    are drained unparsed; a queue overflow loses nothing.
    """

    def __init__(self, inbox: str, peer_lock: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd = fd
        try:
            for path, mask in ((inbox, _IN_MOVED_TO),
                               (peer_lock, _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE)):  # fmt: skip
                if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"inotify_add_watch: {os.strerror(err)}", path)
        except OSError:
            os.close(fd)
            raise
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def wait(self, seconds: float) -> bool:
        """Whether an event came (else the time ran out)."""
        if not self._poll.poll(max(0, math.ceil(seconds * 1000))):
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 1 << 16)
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _hold_lock(root: str, side: str) -> int:
    """Lock a new file exclusively, then rename it to ``<side>.lock``: it appears held."""
    scratch = os.path.join(root, "tmp", f"{side}.lock")
    fd = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(scratch, os.path.join(root, f"{side}.lock"))
    except OSError:
        os.close(fd)
        raise
    return fd


def _locked(fd: int, what: str) -> bool:
    """Whether another open file holds an exclusive flock on ``fd``'s file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise TransportError(f"checking {what}: {exc}") from exc
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _server_up(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise TransportError(f"checking {path}: {exc}") from exc
    try:
        return _locked(fd, path)
    finally:
        os.close(fd)


_FS_MAGIC = {0xEF53: "ext4", 0x01021994: "tmpfs", 0x794C7630: "overlayfs", 0x58465342: "xfs",
             0x9123683E: "btrfs", 0x6969: "nfs"}  # fmt: skip


def filesystem(path: str) -> str:
    """The filesystem type under ``path`` (statfs f_type), for the record."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86-64
    if ctypes.CDLL(None, use_errno=True).statfs(os.fsencode(path), buf) != 0:
        return "unknown"
    magic = struct.unpack_from("@l", buf.raw)[0] & 0xFFFFFFFF
    return _FS_MAGIC.get(magic, hex(magic))
