"""HTTP/1.1 between the containers: ``requests`` on the client, ``http.server`` on the server.

Each client send is a ``POST /msg`` whose response body is the server's reply
(the echo, the credit); see :mod:`transports.http_server` for the server side.

* ``keepalive``: one ``requests.Session``, one TCP connection for the channel.
* ``new-connection``: every request says ``Connection: close``, so the server
  closes after answering and every request pays a TCP handshake and teardown
  (the server counts its connections, in ``settings()``). The server closes
  first, so TIME_WAIT stays on the server's side and the client's ephemeral
  ports are not tied up.

A ``requests`` call blocks until its response, but the channel contract lets a
side send without waiting for the peer (one-way streams, the server sending
first), so the client's HTTP runs in one I/O thread per channel: ``send``
queues, the thread POSTs in order and queues each response for ``recv``; a
``recv`` with nothing queued makes it long-poll ``GET /msg``. The hand-offs
between threads are part of the measured cost (see the report).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from transports import http_server
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
from transports.rendezvous import resolve_once

OUTQ = 1024  # client sends queued behind the request in flight
LONG_POLL_MAX_S = 1.0  # a GET never holds the connection longer, so a send is not stuck behind it


@dataclass(frozen=True)
class HttpOptions(Options):
    """Timeouts in seconds for one HTTP request."""

    connect_timeout_s: float = 5.0
    #: A POST's response waits for the server's app; past this the server is taken for dead.
    response_timeout_s: float = 60.0


class HttpClientChannel(Channel):
    """The client's end: an I/O thread does the HTTP, the caller's thread only queues."""

    def __init__(self, session: requests.Session, base: str, opts: HttpOptions) -> None:
        self._session, self._url, self.options = session, base + "/msg", opts
        self._cond = threading.Condition()
        self._out: deque[bytes] = deque()
        self._in: deque[bytes] = deque()
        self._readers = 0
        self._read_until = 0.0
        self._gone = ""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="http-client", daemon=True)
        self._thread.start()

    def send(self, message: bytes, timeout: float) -> None:
        with self._cond:
            self._check()
            if len(self._out) >= OUTQ and not self._cond.wait_for(
                lambda: len(self._out) < OUTQ or self._gone, timeout
            ):
                raise TransportTimeout(f"the server took no request within {timeout}s")
            self._check()
            self._out.append(message)
            self._cond.notify_all()

    def recv(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._in:
                self._check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout(f"no response within {timeout}s")
                self._readers += 1
                self._read_until = max(self._read_until, deadline)
                self._cond.notify_all()
                self._cond.wait(left)
                self._readers -= 1
            return self._in.popleft()

    def _check(self) -> None:
        if self._gone:
            raise PeerClosed(self._gone)
        if self._closed:
            raise TransportError("channel is closed")

    # -- the I/O thread ------------------------------------------------------------

    def _next(self) -> tuple[bool, bytes | None, float]:
        """(more, message, wait): a message to POST, or None and how long a GET may wait."""
        with self._cond:
            while True:
                if self._out:
                    message = self._out.popleft()
                    self._cond.notify_all()
                    return True, message, 0.0
                left = self._read_until - time.monotonic()
                if self._readers and not self._in and left > 0:
                    return True, None, min(left, LONG_POLL_MAX_S)
                if self._closed or self._gone:
                    return False, None, 0.0
                self._cond.wait()

    def _run(self) -> None:
        while True:
            more, message, wait = self._next()
            if not more:
                return self._goodbye()
            try:
                reply = self._exchange(message, wait)
            except (requests.RequestException, TransportError) as exc:
                with self._cond:
                    self._gone = self._gone or f"the server went away: {exc}"
                    self._cond.notify_all()
                return
            if reply is not None:
                with self._cond:
                    self._in.append(reply)
                    self._cond.notify_all()

    def _exchange(self, message: bytes | None, wait: float) -> bytes | None:
        timeout = (self.options.connect_timeout_s, self.options.response_timeout_s + wait)
        if message is None:
            headers = {"X-Wait-Ms": str(max(1, int(wait * 1000)))}
            r = self._session.get(self._url, headers=headers, timeout=timeout)
        else:
            r = self._session.post(self._url, data=message, timeout=timeout)
        if r.status_code == 200:
            return r.content
        if r.status_code == 204:
            return None
        if r.status_code == 410:
            raise PeerClosed("the server closed the channel")
        raise TransportError(f"HTTP {r.status_code} from the server")

    def _goodbye(self) -> None:
        if not self._gone:  # tell the server, which cannot see a new-connection client leave
            with contextlib.suppress(requests.RequestException):
                self._session.delete(self._url.replace("/msg", "/session"), timeout=1.0)
        self._session.close()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True  # queued sends still leave, then the goodbye
            self._cond.notify_all()
        self._thread.join(2.0)
        self._session.close()


class HttpTransport(Transport[HttpOptions]):
    """POST per message to a stdlib HTTP/1.1 server; keep-alive or a new connection each time."""

    name: ClassVar[str] = "http"
    variants: ClassVar[tuple[str, ...]] = ("keepalive", "new-connection")
    options_type: ClassVar[type[Options]] = HttpOptions
    max_payload: ClassVar[int] = 8 << 20
    summary: ClassVar[str] = "HTTP/1.1 POST per message: requests client, http.server server"

    def __init__(self, *, variant: str | None, mode: str, options: HttpOptions | None = None):
        super().__init__(variant=variant, mode=mode, options=options)
        self._exchange: http_server.Exchange | None = None

    @classmethod
    def stream_window(cls, variant: str | None) -> int | None:
        return 1

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        conn = "on one keep-alive connection"
        if variant != "keepalive":
            conn = "on a new TCP connection per request (handshake and teardown each)"
        if mode == "latency":
            return f"POST the request; the echo is the response body, {conn}"
        return f"POST per message, a window of 1: each response carries the credit, {conn}"

    def listen(self, endpoint: Endpoint) -> Listener:
        where = f"http://0.0.0.0:{endpoint.port}"
        try:
            server, thread = http_server.start(endpoint.port)
        except OSError as exc:
            raise TransportError(f"cannot listen on {where}: {exc}") from exc
        self._exchange = server.exchange
        return http_server.HttpListener(server, thread, where)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        deadline = time.monotonic() + timeout
        base = f"http://{resolve_once(endpoint.host, deadline)}:{endpoint.port}"
        session = self._session()
        while True:
            left = deadline - time.monotonic()
            try:
                session.post(base + "/hello", data=b"", timeout=max(left, 0.001))
                return HttpClientChannel(session, base, self.options)
            except requests.ConnectionError as exc:
                if left <= 0.01:
                    session.close()
                    raise TransportTimeout(f"no HTTP server at {base} within {timeout}s") from exc
            except requests.RequestException as exc:
                session.close()
                raise TransportError(f"cannot connect to {base}: {exc}") from exc
            time.sleep(min(0.01, left))

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy/netrc lookups from the environment per request
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.headers = CaseInsensitiveDict({
            "User-Agent": "ipcbench",
            "Accept": "*/*",
            "Content-Type": "application/octet-stream",
            "Connection": "keep-alive" if self.variant == "keepalive" else "close",
        })  # fmt: skip
        return session

    def settings(self) -> dict[str, Any]:
        ex = self._exchange
        return {
            **super().settings(),
            "client": f"requests {requests.__version__} (urllib3 {urllib3.__version__})",
            "server": "http.server.HTTPServer, HTTP/1.1, one thread, one connection at a time",
            "connection": "Connection: close" if self.variant != "keepalive" else "keep-alive",
            "client_tcp_nodelay": "urllib3 default_socket_options",
            "server_tcp_nodelay": ex.nodelay if ex else "set (disable_nagle_algorithm)",
            "server_connections": ex.connections if ex else None,
            "expect_100_continue": False,
            "chunked": False,
            "name_resolution": "once, at connect",
            "trust_env": False,
            "client_io_thread": True,
            "long_poll_max_s": LONG_POLL_MAX_S,
            "server_write_buffer": http_server.Handler.wbufsize,
            "max_body": http_server.MAX_BODY,
        }
