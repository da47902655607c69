"""The server side of the http transport: the stdlib HTTP/1.1 server in a thread.

``POST /msg`` carries a client->server message; its response carries the
server's next send (the echo, the credit). The server's ``recv`` takes the next
request body; its ``send`` answers the request that is waiting, or, if none
is, is queued for the client's next ``GET /msg`` (a long poll). If the server
calls ``recv`` again without answering a ``POST`` it has read, that request is
answered ``204 No Content`` so the client may send the next one (one-way use).
``POST /hello`` is the client's connect, ``DELETE /session`` its close.

One server thread handles one connection at a time (the client has one
request in flight at most), so no thread is started per connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import TCPServer
from typing import Any

from transports.base import Channel, Listener, PeerClosed, TransportError, TransportTimeout

MAX_BODY = 16 << 20
OUTBOX = 1024  # server->client messages queued while no request waits for them
_EOF_CHECK_S = 0.05  # while a request waits for the app, how often to look for a client EOF
NO_CONTENT = (204, b"")  # an answer without a message
Answer = tuple[int, bytes]  # status and body


class Waiting:
    """A request waiting for its response."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "post" or "get"
        self.taken = False  # a POST body the app has received
        self.answer: Answer | None = None


class Exchange:
    """What the HTTP thread and the app share, under one condition variable."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inbox: deque[bytes] = deque()
        self.outbox: deque[bytes] = deque()
        self.waiting: Waiting | None = None
        self.hello = False
        self.gone = ""  # why the client is gone, once it is
        self.closed = False
        self.connections = 0
        self.nodelay = -1  # TCP_NODELAY as read back from an accepted connection

    def respond(self, answer: Answer) -> None:
        """Answer the waiting request (caller holds the lock)."""
        assert self.waiting is not None
        self.waiting.answer = answer
        self.waiting = None
        self.cond.notify_all()

    def await_answer(
        self, waiting: Waiting, conn: socket.socket, until: float | None
    ) -> Answer | None:
        """In the HTTP thread: the app's answer; None once the server closes."""
        with self.cond:
            while waiting.answer is None:
                if self.closed:
                    return None
                if self.gone:
                    raise ConnectionAbortedError("the client is gone")
                left = _EOF_CHECK_S
                if until is not None:
                    left = min(left, until - time.monotonic())
                if left <= 0:  # the long poll is over: nothing to fetch
                    waiting.answer = NO_CONTENT
                    if self.waiting is waiting:
                        self.waiting = None
                elif not self.cond.wait(left) and _at_eof(conn):
                    self.gone = "the client closed its connection with a request unanswered"
                    self.cond.notify_all()
            return waiting.answer


def _at_eof(conn: socket.socket) -> bool:
    with contextlib.suppress(OSError):
        poller = select.poll()  # not select(): the descriptor may be above FD_SETSIZE
        poller.register(conn, select.POLLIN)
        if poller.poll(0):
            return conn.recv(1, socket.MSG_PEEK) == b""
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says Connection: close
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted connection
    wbufsize = 1 << 16  # status line, headers and a small body leave in one send
    server: ExchangeServer

    asked_close = False  # the last request said "Connection: close"

    def handle(self) -> None:
        ex = self.server.exchange
        with ex.cond:
            ex.connections += 1
            ex.nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.server.active = self.connection
        with contextlib.suppress(ConnectionError):
            super().handle()
        # A connection that ends without "Connection: close" is the client leaving.
        if not self.asked_close:
            with ex.cond:
                ex.gone = ex.gone or "the client closed its connection"
                ex.cond.notify_all()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.asked_close = self.close_connection
        return ok

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", "0"))
        if size > MAX_BODY:
            self.close_connection = True
            return self._reply(413, b"")
        body = self.rfile.read(size)
        if len(body) < size:
            raise ConnectionAbortedError("the client sent a short body")
        ex = self.server.exchange
        if self.path == "/hello":
            with ex.cond:
                ex.hello = True
                ex.cond.notify_all()
            return self._reply(204, b"")
        waiting = Waiting("post")
        with ex.cond:
            ex.inbox.append(body)
            ex.waiting = waiting
            ex.cond.notify_all()
            if ex.outbox:
                ex.respond((200, ex.outbox.popleft()))
        self._answer(ex.await_answer(waiting, self.connection, None))

    def do_GET(self) -> None:
        ex = self.server.exchange
        until = time.monotonic() + int(self.headers.get("X-Wait-Ms", "0")) / 1000
        waiting = Waiting("get")
        with ex.cond:
            ex.waiting = waiting
            if ex.outbox:
                ex.respond((200, ex.outbox.popleft()))
        self._answer(ex.await_answer(waiting, self.connection, until))

    def do_DELETE(self) -> None:
        ex = self.server.exchange
        with ex.cond:
            ex.gone = "the client closed the channel"
            ex.cond.notify_all()
        self._reply(204, b"")

    def _answer(self, answer: Answer | None) -> None:
        if answer is None:  # the server closed: the client must not wait
            self.close_connection = True
            answer = (410, b"")
        self._reply(*answer)

    def _reply(self, code: int, body: bytes) -> None:
        if self.close_connection:  # the FIN rides on the response's last segment (below)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        self.send_response(code)
        if code != 204:
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)
        if self.close_connection:
            # Corked, the FIN goes out in the response's last segment: the client
            # sees the close with the data and never closes first, so the server
            # keeps the TIME_WAIT and the client's ephemeral ports stay free.
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the request


class ExchangeServer(HTTPServer):
    allow_reuse_address = True  # a previous cell's TIME_WAIT must not block the port
    active: socket.socket | None = None

    def __init__(self, port: int, exchange: Exchange) -> None:
        self.exchange = exchange
        super().__init__(("0.0.0.0", port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up getfqdn("0.0.0.0"): a DNS query.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = "server", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the client dropped; the exchange already knows


class HttpServerChannel(Channel):
    """The app's end of the exchange; owns the server and its thread."""

    def __init__(self, server: ExchangeServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self._ex = server.exchange
        self._closed = False

    def recv(self, timeout: float) -> bytes:
        ex = self._ex
        deadline = time.monotonic() + timeout
        with ex.cond:
            waiting = ex.waiting
            if waiting is not None and waiting.kind == "post" and waiting.taken:
                ex.respond(NO_CONTENT)  # moving on without a reply: release the client
            while not ex.inbox:
                self._check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout(f"no request within {timeout}s")
                ex.cond.wait(left)
            if ex.waiting is not None and ex.waiting.kind == "post":
                ex.waiting.taken = True
            return ex.inbox.popleft()

    def send(self, message: bytes, timeout: float) -> None:
        ex = self._ex
        deadline = time.monotonic() + timeout
        with ex.cond:
            self._check()
            if ex.waiting is not None:
                return ex.respond((200, message))
            while len(ex.outbox) >= OUTBOX:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout(f"the client fetched nothing within {timeout}s")
                ex.cond.wait(left)
                self._check()
            ex.outbox.append(message)

    def _check(self) -> None:
        if self._closed:
            raise TransportError("channel is closed")
        if self._ex.gone:
            raise PeerClosed(self._ex.gone)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            shutdown(self._server, self._thread)


class HttpListener(Listener):
    def __init__(self, server: ExchangeServer, thread: threading.Thread, where: str) -> None:
        self._server, self._thread, self._where = server, thread, where
        self._owned = True

    def accept(self, timeout: float) -> Channel:
        if not self._owned:
            raise TransportError(f"listener on {self._where} is closed")
        ex = self._server.exchange
        with ex.cond:
            if not ex.cond.wait_for(lambda: ex.hello, timeout):
                raise TransportTimeout(f"no client on {self._where} within {timeout}s")
        self._owned = False  # the channel owns the server now
        return HttpServerChannel(self._server, self._thread)

    def close(self) -> None:
        if self._owned:
            self._owned = False
            shutdown(self._server, self._thread)


def start(port: int) -> tuple[ExchangeServer, threading.Thread]:
    server = ExchangeServer(port, Exchange())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def shutdown(server: ExchangeServer, thread: threading.Thread) -> None:
    """Answer what waits with 410 Gone, stop the thread, close every socket."""
    ex = server.exchange
    with ex.cond:
        ex.closed = True
        ex.cond.notify_all()
    if server.active is not None:
        with contextlib.suppress(OSError):  # unblock a handler waiting for the next request
            server.active.shutdown(socket.SHUT_RD)
    server.shutdown()
    thread.join(1.0)
    server.server_close()
