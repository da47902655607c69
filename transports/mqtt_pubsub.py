"""MQTT publish/subscribe through a broker (the ``mqtt`` service), QoS 0, 1 or 2.

Each cell has its own topic prefix ``P`` (from ``Endpoint.services["mqtt"]``,
e.g. ``broker:1883/cell7-3``). The client publishes on ``P/s`` (to-server);
the server publishes replies and credits on the reply topic ``P/c``
(to-client). Control messages travel on ``P/s/<word>`` and ``P/c/<word>``
at QoS 1: ``hello`` (the client), ``welcome`` (the server's answer: it has
subscribed, so nothing the client sends afterwards is lost to a late join)
and ``gone`` (each side's Last Will, also sent on a clean close, so the peer's
``recv`` ends with :class:`PeerClosed` rather than silence).

The network loop runs inline in ``send``/``recv`` (see :mod:`transports.mqtt_link`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from transports.base import (
    Channel,
    Endpoint,
    Listener,
    Options,
    Transport,
    TransportError,
    TransportTimeout,
)
from transports.mqtt_link import MAX_MESSAGE, Link, LinkSettings, link_facts

QOS = {"qos0": 0, "qos1": 1, "qos2": 2}
LISTEN_TIMEOUT = 10.0  # connect + SUBACK of the server side
HELLO_EVERY = 0.1  # the client repeats hello until the server welcomes it


@dataclass(frozen=True)
class MqttOptions(Options):
    """Client tuning; the broker's own settings are the ``mqtt`` service's."""

    #: Seconds between keepalive PINGREQs on an idle connection (the broker
    #: drops a silent client after 1.5x this); a killed peer is seen at once anyway.
    keepalive_s: int = 5
    #: SO_RCVBUF of the client socket in bytes; 0 leaves the kernel's autotuning.
    rcvbuf: int = 0
    #: "3.1.1" or "5". 3.1.1 by default: paho builds an MQTT 5 Properties object
    #: for every PUBLISH it parses, which cost 10-20 % of a QoS 0 round trip on
    #: loopback (p50 261-283 us against 311-332 us), and nothing here needs 5.
    protocol: str = "3.1.1"


class MqttChannel(Channel):
    """One side's data topic out, the other's in, over one broker connection."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def send(self, message: bytes, timeout: float) -> None:
        self._link.publish_data(message, timeout)

    def recv(self, timeout: float) -> bytes:
        return self._link.next_data(timeout)

    def close(self) -> None:
        self._link.close()


class MqttListener(Listener):
    def __init__(self, link: Link) -> None:
        self._link: Link | None = link

    def accept(self, timeout: float) -> Channel:
        if self._link is None:
            raise TransportError("mqtt listener is closed or has accepted already")
        link = self._link
        deadline = time.monotonic() + timeout
        if not link.wait_for(lambda: link.hellos > 0, deadline):
            raise TransportTimeout(f"no client said hello on {link.where} within {timeout}s")
        link.publish_control("welcome", max(deadline - time.monotonic(), 0.1))
        self._link = None  # the channel owns the connection now
        return MqttChannel(link)

    def close(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            link.close()


class MqttTransport(Transport[MqttOptions]):
    """paho-mqtt 2.x clients through the broker, one connection per side."""

    name: ClassVar[str] = "mqtt"
    variants: ClassVar[tuple[str, ...]] = tuple(QOS)
    options_type: ClassVar[type[Options]] = MqttOptions
    max_payload: ClassVar[int] = MAX_MESSAGE
    summary: ClassVar[str] = "MQTT publish/subscribe through a mosquitto broker container"
    services: ClassVar[tuple[str, ...]] = ("mqtt",)

    @classmethod
    def delivers(cls, variant: str | None) -> bool:
        # QoS 0 is "at most once": loss is a measured result. QoS 1 is "at least
        # once", but duplicates only come from a retransmission after a
        # reconnect, which this transport never does (a lost broker fails the
        # cell): any loss or duplicate on QoS 1 or 2 is a fault and fails it.
        return variant != "qos0"

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        qos = f"QoS {QOS[variant or 'qos0']}"
        if mode == "latency":
            return (
                f"request published on the cell's to-server topic at {qos}; the echo "
                "comes back on its reply topic, both through the broker"
            )
        paced = (
            "; each send waits for its PUBCOMP (the broker forwards on PUBREL)"
            if variant == "qos2"
            else ""
        )
        return (
            f"one-way stream on the to-server topic at {qos}; credits come back on the "
            "reply topic; the benchmark's window bounds what is in flight (the broker "
            f"and client queue limits sit above it){paced}"
        )

    def _link(self, endpoint: Endpoint, role: str) -> Link:
        address = endpoint.services.get("mqtt")
        if not address:
            raise TransportError("no mqtt broker address in endpoint.services")
        qos = QOS[self.variant or "qos0"]
        opts = self.options
        settings = LinkSettings.parse(
            address,
            role=role,
            qos=qos,
            keepalive_s=opts.keepalive_s,
            rcvbuf=opts.rcvbuf,
            protocol=opts.protocol,
        )
        return Link(settings)

    def listen(self, endpoint: Endpoint) -> Listener:
        link = self._link(endpoint, "server")
        link.open(time.monotonic() + LISTEN_TIMEOUT)
        return MqttListener(link)

    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        deadline = time.monotonic() + timeout
        link = self._link(endpoint, "client")
        try:
            link.open(deadline)
            while True:  # hello until welcomed: the server may not have subscribed yet
                link.publish_control("hello", max(deadline - time.monotonic(), 0.1))
                soon = min(deadline, time.monotonic() + HELLO_EVERY)
                if link.wait_for(lambda: link.welcomed, soon):
                    return MqttChannel(link)
                if time.monotonic() >= deadline:
                    raise TransportTimeout(f"no server answered on {link.where} within {timeout}s")
        except BaseException:
            link.close()
            raise

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "qos": QOS[self.variant or "qos0"], **link_facts()}
