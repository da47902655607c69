"""Rows in PostgreSQL tables used as queues: one table per direction.

The server side creates the cell's schema (named by the ``search_path`` in the
conninfo the ``postgres`` service hands out) with two UNLOGGED tables,
``to_server`` and ``to_client`` (``id`` identity primary key, ``payload``
bytea stored EXTERNAL: out of line above ~2 kB, never compressed, so a
patterned payload does not get cheap by accident). A send is one INSERT; a
receive is one statement that fetches *and* deletes the oldest rows
(``DELETE ... WHERE id IN (SELECT id ... ORDER BY id LIMIT n) RETURNING``):
one round trip per message in latency mode, batches in a stream, and no
second round trip to clean up (SELECT-then-DELETE would need one).

``poll`` runs that statement every ``poll_interval_s`` while the inbox is
empty. ``notify`` sends ``pg_notify(channel, id)`` in the same statement as
the INSERT (so it is delivered at that commit) and the receiver sleeps in
LISTEN until a notification names an id it has not fetched yet; the message
itself always travels as a row (NOTIFY payloads are small text).

Sessions: autocommit, statements prepared on first use, binary parameters
and results (no hex encoding of bytea), ``synchronous_commit = off``.
Presence: each side holds a session advisory lock; a waiting or sending side
looks for the peer's in ``pg_locks`` every ``peer_check_s``. A closed or dead
peer's session ends and its lock goes with it: :class:`PeerClosed`.
"""

from __future__ import annotations

import collections
import contextlib
import re
import time
import zlib
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

SIDES = {"server": 1, "client": 2}  # second key of each side's advisory lock
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_SETUP = """DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s};
CREATE UNLOGGED TABLE {s}.to_server (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payload bytea NOT NULL);
ALTER TABLE {s}.to_server ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE UNLOGGED TABLE {s}.to_client (LIKE {s}.to_server INCLUDING ALL);"""


@dataclass(frozen=True)
class PgOptions(Options):
    """``poll_interval_s``: the ``poll`` variant's sleep while the inbox is empty.

    ``peer_check_s``: how often a waiting or sending side looks for the peer's lock;
    ``fetch_batch``: the most rows one receive statement takes.
    """

    poll_interval_s: float = 0.001
    peer_check_s: float = 0.05
    fetch_batch: int = 64


class PgQueueTransport(Transport[PgOptions]):
    """INSERT into the peer's table; DELETE ... RETURNING from one's own, in id order."""

    name: ClassVar[str] = "postgres"
    variants: ClassVar[tuple[str, ...]] = ("poll", "notify")
    options_type: ClassVar[type[Options]] = PgOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "rows in a PostgreSQL table per direction, polled or LISTEN/NOTIFY"
    services: ClassVar[tuple[str, ...]] = ("postgres",)

    def __init__(self, *, variant: str | None, mode: str, options: PgOptions | None = None):
        super().__init__(variant=variant, mode=mode, options=options)
        self._server_version = 0

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        if mode == "latency":
            return "request rows in to_server, replies as rows in the mirrored to_client table"
        return "one-way stream of rows; credits come back as rows in to_client"

    def listen(self, endpoint: Endpoint) -> Listener:
        session = self._session(endpoint, time.monotonic() + 10.0)
        try:
            session.conn.execute(_SETUP.format(s=session.schema), prepare=False)
            session.join("server", listen=self.variant == "notify")
        except Exception:
            session.close()
            raise
        return PgListener(self, session)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        deadline = time.monotonic() + timeout
        session = self._session(endpoint, deadline)
        try:
            while not session.present("server"):  # its tables exist once it holds its lock
                if time.monotonic() >= deadline:
                    raise TransportTimeout(f"no server in schema {session.schema} after {timeout}s")
                time.sleep(0.005)
            session.join("client", listen=self.variant == "notify")
        except Exception:
            session.close()
            raise
        return PgChannel(session, "client", self.variant == "notify", self.options)

    def _session(self, endpoint: Endpoint, deadline: float) -> Session:
        conninfo = endpoint.services.get("postgres")
        if not conninfo:
            raise TransportError("no postgres service address in the endpoint")
        session = Session.open(conninfo, deadline)
        self._server_version = session.conn.info.server_version
        return session

    def settings(self) -> dict[str, Any]:
        out = {
            **super().settings(),
            "queue": "one UNLOGGED table per direction: id identity PK, payload bytea EXTERNAL",
            "receive": "DELETE ... WHERE id IN (oldest fetch_batch) RETURNING, one round trip",
            "session": {
                "autocommit": True,
                "prepare_threshold": 0,
                "binary": True,
                "synchronous_commit": "off",
            },
            "presence": "session advisory lock per side, peer looked up in pg_locks",
        }
        if self.variant == "notify":
            del out["poll_interval_s"]
            out["wakeup"] = "LISTEN; pg_notify(channel, id) in the INSERT's statement"
        if self._server_version:
            out["server_version_num"] = self._server_version
        return out


class Session:
    """One autocommit connection and the names of the cell's schema."""

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn, self.schema = conn, schema
        self.key = zlib.crc32(schema.encode()) & 0x7FFFFFFF

    @classmethod
    def open(cls, conninfo: str, deadline: float) -> Session:
        import psycopg

        while True:
            try:
                wait = max(2, int(deadline - time.monotonic()))
                conn = psycopg.connect(
                    conninfo, autocommit=True, prepare_threshold=0, connect_timeout=wait
                )
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise TransportTimeout(f"cannot reach postgres: {exc}") from exc
                time.sleep(0.05)
        try:
            conn.execute("SET synchronous_commit = off", prepare=False)
            row = conn.execute("SELECT current_setting('search_path')").fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise TransportError(f"setting up the postgres session: {exc}") from exc
        path = str(row[0]) if row else ""
        schema = path.split(",")[0].strip().strip('"')
        if not _SCHEMA.fullmatch(schema):
            conn.close()
            raise TransportError(f"the conninfo's search_path {path!r} names no usable schema")
        return cls(conn, schema)

    def join(self, side: str, *, listen: bool) -> None:
        """Listen on our inbox's channel (before the peer may send), then hold our lock."""
        if listen:
            self.conn.execute(f"LISTEN {self.schema}_to_{side}", prepare=False)
        row = self.conn.execute(f"SELECT pg_try_advisory_lock({self.key}, {SIDES[side]})")
        if not row.fetchone()[0]:
            raise TransportError(f"another {side} holds schema {self.schema}")

    def present(self, side: str) -> bool:
        query = (
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
            f"AND classid = {self.key} AND objid = {SIDES[side]} AND objsubid = 2)"
        )
        return bool(self.conn.execute(query).fetchone()[0])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class PgListener(Listener):
    def __init__(self, transport: PgQueueTransport, session: Session) -> None:
        self._transport, self._session = transport, session
        self._open = True

    def accept(self, timeout: float) -> Channel:
        if not self._open:
            raise TransportError("listener is closed")
        deadline = time.monotonic() + timeout
        try:
            while not self._session.present("client"):
                if time.monotonic() >= deadline:
                    raise TransportTimeout(f"no client joined within {timeout}s")
                time.sleep(0.002)
        except _db_errors() as exc:
            raise TransportError(f"waiting for the client: {exc}") from exc
        self._open = False  # the channel owns the session now
        transport = self._transport
        return PgChannel(self._session, "server", transport.variant == "notify", transport.options)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._session.close()


def _db_errors() -> type[Exception]:
    import psycopg

    return psycopg.Error


class PgChannel(Channel):
    def __init__(self, session: Session, side: str, notify: bool, opts: PgOptions) -> None:
        self._session, self._conn, self.options = session, session.conn, opts
        self._peer = "client" if side == "server" else "server"
        s, inbox, outbox = session.schema, f"to_{side}", f"to_{self._peer}"
        self._fetch = (f"DELETE FROM {s}.{inbox} WHERE id IN (SELECT id FROM {s}.{inbox} "
                       f"ORDER BY id LIMIT {opts.fetch_batch}) RETURNING id, payload")  # fmt: skip
        insert = f"INSERT INTO {s}.{outbox} (payload) VALUES (%b)"
        announce = f"SELECT pg_notify('{s}_{outbox}', m.id::text) FROM m"
        self._insert = f"WITH m AS ({insert} RETURNING id) {announce}" if notify else insert
        self._notify = notify
        self._cur = self._conn.cursor(binary=True)
        self._inbox: collections.deque[bytes] = collections.deque()
        self._notified = self._fetched = 0  # highest row ids announced / taken
        self._timeout_ms = -1
        self._checked = time.monotonic()
        self._closed = False

    def send(self, message: bytes, timeout: float) -> None:
        self._usable()
        try:
            if time.monotonic() - self._checked >= self.options.peer_check_s:
                self._check_peer()
            self._arm(timeout)
            self._cur.execute(self._insert, (message,), prepare=True)
        except _db_errors() as exc:
            raise self._wrap(exc, "send") from exc

    def recv(self, timeout: float) -> bytes:
        self._usable()
        if self._inbox:
            return self._inbox.popleft()
        deadline = time.monotonic() + timeout
        try:
            self._arm(timeout)
            while not self._receive(deadline, timeout):
                pass
        except _db_errors() as exc:
            raise self._wrap(exc, "recv") from exc
        return self._inbox.popleft()

    def _receive(self, deadline: float, timeout: float) -> bool:
        """One look (and one wait if nothing came); whether the inbox has a message now."""
        if (not self._notify or self._notified > self._fetched) and self._take():
            return True
        now = time.monotonic()
        if now - self._checked >= self.options.peer_check_s:
            self._check_peer(take_first=True)  # also a fallback look on the notify variant
            if self._inbox:
                return True
        if now >= deadline:
            raise TransportTimeout(f"no row in {self._session.schema} within {timeout}s")
        wait = min(deadline, self._checked + self.options.peer_check_s) - now
        if not self._notify:
            time.sleep(max(0.0, min(wait, self.options.poll_interval_s)))
            return False
        for note in self._conn.notifies(timeout=max(0.0, wait), stop_after=1):
            with contextlib.suppress(ValueError):
                self._notified = max(self._notified, int(note.payload))
        return False

    def _take(self) -> bool:
        rows = self._cur.execute(self._fetch, prepare=True).fetchall()
        if not rows:
            return False
        rows.sort(key=lambda row: row[0])  # RETURNING promises no order
        self._fetched = max(self._fetched, rows[-1][0])
        self._inbox.extend(row[1] for row in rows)
        return True

    def _check_peer(self, *, take_first: bool = False) -> None:
        # The peer's rows are committed before its session (and lock) ends, so a
        # look after finding it gone still delivers everything it sent.
        self._checked = time.monotonic()
        alive = self._session.present(self._peer)
        if take_first:
            self._take()
        if not alive and not self._inbox:
            raise PeerClosed(f"the {self._peer} session ended (its advisory lock is gone)")

    def _arm(self, timeout: float) -> None:
        """Bound every statement by the call's timeout (one SET when it changes)."""
        ms = max(1, int(timeout * 1000 + 0.999))
        if ms != self._timeout_ms:
            self._conn.execute(f"SET statement_timeout = {ms}", prepare=False)
            self._timeout_ms = ms

    def _wrap(self, exc: Exception, what: str) -> TransportError:
        import psycopg

        if isinstance(exc, psycopg.errors.QueryCanceled):
            return TransportTimeout(f"{what}: the statement outlived its timeout: {exc}")
        return TransportError(f"{what} failed: {exc}")

    def _usable(self) -> None:
        if self._closed:
            raise TransportError("channel is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._session.close()  # ends the session: our lock goes, the peer sees it
