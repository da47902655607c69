"""One paho-mqtt 2.x connection to the broker, its network loop driven inline.

Why no ``loop_start()`` thread: with a network thread, every ``publish``
only queues the packet and wakes the thread through a socket pair, and every
received message is handed back through a queue, so each message pays thread
switches and GIL handoffs. Measured between two processes through mosquitto
on loopback (64 B, p50), inline against loop_start + queue.Queue: QoS 0
315 us / 478 us, QoS 1 450 / 654, QoS 2 961 / 1409. Driven inline,
``publish`` writes the packet at once from the caller (paho does that when no
thread runs and no socket pair exists) and ``recv`` selects on the socket and
parses what arrived, in one thread.

The price: nothing moves while the caller is away. QoS 0/1 need nothing from
the sender after the PUBLISH (``send`` still polls, at most every
``POLL_EVERY_S``, to take in PUBACKs and notice a peer that left). QoS 2 does:
mosquitto forwards a QoS 2 message only on the sender's PUBREL, so a QoS 2
``send`` returns at PUBCOMP (paho's ``wait_for_publish`` semantics: the broker
then owns the message, exactly once), one message per two broker round trips.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transports.base import PeerClosed, TransportError, TransportTimeout

if TYPE_CHECKING:
    from paho.mqtt.client import Client, MQTTMessage, MQTTMessageInfo

#: The largest message (benchmark header included) a side may publish; the
#: broker's max_packet_size is set above it (bench/services/mosquitto.py).
MAX_MESSAGE = 2 << 20
#: The broker's max_inflight_messages: its quota of unacknowledged QoS 1/2
#: publishes per client (announced to MQTT 5 clients as Receive Maximum, which
#: paho ignores); beyond it the broker refuses messages, so paho keeps below it. It is
#: far above the benchmark's window (256 at most): it never throttles a cell.
RECEIVE_MAXIMUM = 1024
POLL_EVERY_S = 0.001  # QoS 0/1: how stale the view of the peer may get while only sending
CLOSE_FLUSH_S = 1.0  # close waits this long for unacknowledged QoS 1/2 publishes
FIRST_BACKOFF, MAX_BACKOFF = 0.005, 0.1


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:  # pragma: no cover - an install problem
        raise TransportError("mqtt needs paho-mqtt 2.x: pip install 'paho-mqtt>=2'") from exc
    return mqtt


def link_facts() -> dict[str, Any]:
    """The client-side tuning, for ``Transport.settings``."""
    from paho.mqtt import __version__

    return {
        "client": f"paho-mqtt {__version__}",
        "network_loop": "inline in send/recv, no loop thread (no thread handoff per message)",
        "tcp_nodelay": True, "clean_session": True,
        "client_max_inflight": RECEIVE_MAXIMUM,
        "client_max_queued": "unlimited (the benchmark's window bounds it)",
        "qos2_handshake_poll": "every send", "qos0_1_poll_every_s": POLL_EVERY_S,
        "topics": "<prefix>/s to the server, <prefix>/c the reply topic",
        "control": "<topic>/hello|welcome|gone at QoS 1; gone is each side's Last Will",
        "max_message": MAX_MESSAGE,
    }  # fmt: skip


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    prefix: str
    role: str  # "server" or "client"
    qos: int
    keepalive_s: int
    rcvbuf: int
    protocol: str  # "3.1.1" or "5"

    @classmethod
    def parse(cls, address: str, **fields: Any) -> LinkSettings:
        """``address`` is ``host:port/prefix``, as the mqtt service's reset returns it."""
        hostport, _, prefix = address.partition("/")
        host, _, port = hostport.rpartition(":")
        if not (host and port.isdigit() and prefix) or any(c in prefix for c in "+#"):
            raise TransportError(f"bad mqtt address {address!r}: want host:port/prefix")
        return cls(host=host, port=int(port), prefix=prefix, **fields)

    def topic(self, towards: str) -> str:
        return f"{self.prefix}/{'s' if towards == 'server' else 'c'}"


class Link:
    """A broker connection: one data topic in, one out, and their control words."""

    def __init__(self, s: LinkSettings) -> None:
        self.s = s
        self.where = f"mqtt {s.host}:{s.port}/{s.prefix}"
        peer = "client" if s.role == "server" else "server"
        self._in, self._out = s.topic(s.role), s.topic(peer)
        self._ctl = len(self._in) + 1  # where the control word starts in an inbound topic
        # Control words at the data's QoS (at least 1), so that "gone" can never
        # overtake data still in a QoS 2 handshake.
        self._ctl_qos = max(1, s.qos)
        self._inbox: deque[bytes] = deque()
        self.hellos, self.welcomed = 0, False
        self._peer_gone = self._closed = self._connected = False
        self._lost = ""  # why the broker connection ended, once it has
        self._sub_mid: int | None = None
        self._granted: list[int] | None = None
        self._last: MQTTMessageInfo | None = None
        self._last_pump = 0.0
        mqtt = _paho()
        self._rc_ok = mqtt.MQTT_ERR_SUCCESS
        self._v5 = s.protocol == "5"
        c: Client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"ipcbench-{s.role}-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else True,  # MQTT 5: clean_start at connect
        )
        c.max_inflight_messages_set(RECEIVE_MAXIMUM)
        c.max_queued_messages_set(0)
        c.will_set(f"{self._out}/gone", b"", qos=self._ctl_qos)
        c.on_socket_open = self._tune
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_subscribe, c.on_message = self._on_subscribe, self._on_message
        self._c = c

    # -- callbacks (run inside paho, in our own thread) -------------------------

    def _tune(self, _c: Any, _u: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paho leaves Nagle on
        if self.s.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.s.rcvbuf)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self._lost = f"broker refused the connection: {rc}"
        else:
            self._connected = True

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._lost = self._lost or f"broker connection ended: {rc}"

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        if mid == self._sub_mid:
            self._granted = [-1 if rc.is_failure else rc.value for rc in codes]

    def _on_message(self, _c: Any, _u: Any, msg: MQTTMessage) -> None:
        topic = msg.topic
        if topic == self._in:
            self._inbox.append(bytes(msg.payload))  # paho gives bytes: no copy
            return
        word = topic[self._ctl :]
        if word == "hello":
            self.hellos += 1
        elif word == "welcome":
            self.welcomed = True
        elif word == "gone":
            self._peer_gone = True

    # -- setting up --------------------------------------------------------------

    def open(self, deadline: float) -> None:
        """Connect, subscribe and wait for the SUBACK (the broker routes to us from then on)."""
        self._connect(deadline)
        if not self.wait_for(lambda: self._connected, deadline):
            raise TransportTimeout(f"no CONNACK from {self.where} in time")
        wanted = [(self._in, self.s.qos), (f"{self._in}/+", self._ctl_qos)]
        rc, self._sub_mid = self._c.subscribe(wanted)
        if rc != self._rc_ok:
            raise TransportError(f"subscribe on {self.where} failed: {_paho().error_string(rc)}")
        if not self.wait_for(lambda: self._granted is not None, deadline):
            raise TransportTimeout(f"no SUBACK from {self.where} in time")
        if self._granted != [q for _, q in wanted]:
            raise TransportError(f"broker granted QoS {self._granted} for {wanted} on {self.where}")

    def _connect(self, deadline: float) -> None:
        backoff = FIRST_BACKOFF
        while True:  # the broker may be restarting: retry until the deadline
            self._c.connect_timeout = max(deadline - time.monotonic(), 0.05)
            try:
                if self._v5:
                    self._c.connect(self.s.host, self.s.port, self.s.keepalive_s, clean_start=True)
                else:
                    self._c.connect(self.s.host, self.s.port, self.s.keepalive_s)
                return
            except OSError as exc:
                if time.monotonic() + backoff > deadline:
                    raise TransportTimeout(f"cannot reach {self.where}: {exc}") from exc
            time.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF)

    # -- the network loop ----------------------------------------------------------

    def wait_for(self, done: Callable[[], bool], deadline: float) -> bool:
        """Run the network loop until ``done()`` (True) or the deadline (False)."""
        while not done():
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pump(remaining)
        return True

    def _pump(self, wait: float) -> None:
        """One round of network I/O: wait up to ``wait`` s, then read, write, keep alive."""
        c = self._c
        sock = c.socket()
        if sock is None:
            self._lost = self._lost or "no connection to the broker"
            return
        writing = [sock] if c.want_write() else []
        # Wake for keepalive duties well before they are due.
        ready, writable, _ = select.select([sock], writing, [], min(wait, self.s.keepalive_s / 2))
        rc = c.loop_read() if ready else self._rc_ok
        if rc == self._rc_ok and writable:
            rc = c.loop_write()
        if rc == self._rc_ok:
            rc = c.loop_misc()
        if rc != self._rc_ok:
            self._lost = self._lost or f"broker connection lost: {_paho().error_string(rc)}"
        self._last_pump = time.monotonic()

    def _check_alive(self) -> None:
        if self._closed:
            raise TransportError(f"{self.where}: channel is closed")
        if self._peer_gone:
            raise PeerClosed(f"the peer left {self.where}")
        if self._lost:
            raise TransportError(f"{self.where}: {self._lost}")

    # -- messages ------------------------------------------------------------------

    def publish_data(self, message: bytes, timeout: float) -> None:
        if len(message) > MAX_MESSAGE:
            raise TransportError(f"message of {len(message)} bytes exceeds {MAX_MESSAGE}")
        self._publish(self._out, message, self.s.qos, timeout)

    def publish_control(self, word: str, timeout: float) -> None:
        self._publish(f"{self._out}/{word}", b"", self._ctl_qos, timeout)

    def _publish(self, topic: str, payload: bytes, qos: int, timeout: float) -> None:
        self._check_alive()
        c = self._c
        info = c.publish(topic, payload, qos)
        if info.rc != self._rc_ok:
            self._pump(0)  # the broker may have just gone: say so if it has
            self._check_alive()
            raise TransportError(f"publish on {self.where}: {_paho().error_string(info.rc)}")
        self._last = info
        if qos == 2:  # the broker forwards only after our PUBREL: see the module doc
            done: Callable[[], bool] = info.is_published
        elif c.want_write():  # a big message: the rest goes out before we return
            done = lambda: not c.want_write()  # noqa: E731
        else:
            if time.monotonic() - self._last_pump > POLL_EVERY_S:
                self._pump(0)  # take in acknowledgements; notice a peer that left
            return
        if not self.wait_for(done, time.monotonic() + timeout):
            raise TransportTimeout(f"publish not completed within {timeout}s on {self.where}")

    def next_data(self, timeout: float) -> bytes:
        if self._inbox:
            return self._inbox.popleft()
        deadline = time.monotonic() + timeout
        if not self.wait_for(lambda: bool(self._inbox), deadline):
            raise TransportTimeout(f"no message within {timeout}s on {self.where}")
        return self._inbox.popleft()

    def close(self) -> None:
        """Flush QoS 1/2 publishes, then leave with our Will (the peer sees us go)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._connected and not self._lost:
                last, end = self._last, time.monotonic() + CLOSE_FLUSH_S
                # QoS 2 is forwarded only after our PUBREL: finish it before "gone".
                self._settle(lambda: last is None or last.is_published(), end)
                if self._v5:  # the broker publishes our Will for us
                    self._c.disconnect(reasoncode=_leave_with_will())
                else:  # a clean 3.1.1 DISCONNECT discards the Will: say it ourselves
                    gone = self._c.publish(f"{self._out}/gone", b"", self._ctl_qos)
                    self._settle(gone.is_published, end)
                    self._c.disconnect()
                self._settle(lambda: self._c.socket() is None, end)
        except Exception:  # close never raises; the socket is closed below
            pass
        finally:
            sock = self._c.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _settle(self, done: Callable[[], bool], deadline: float) -> None:
        """Like wait_for, but a peer that left or a closed channel do not stop it."""
        while not done() and not self._lost and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())


def _leave_with_will() -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    return ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
