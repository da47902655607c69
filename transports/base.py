"""The contract every transport implements.

A transport moves opaque messages (``bytes``) between a *server* side and a
*client* side that run in two different containers. It knows nothing of
timing, sequence numbers or containers: the benchmark owns all of that and
puts its own header inside the bytes it hands over.

Adding a transport is one module in this package, one line in the registry
(``transports/__init__.py``), one row in the README; the conformance suite in
``tests/test_conformance.py`` then runs against it.

Contract, in one place:

* ``Transport(variant=..., mode=..., options=...)`` is cheap and does no I/O.
  ``mode`` (``"latency"`` or ``"throughput"``) lets the transport tune itself
  for the job; every tuning decision must appear in :meth:`Transport.settings`.
* The server side calls :meth:`Transport.listen` once, then
  :meth:`Listener.accept` to obtain the one :class:`Channel` of a cell.
* The client side calls :meth:`Transport.connect`.
* A :class:`Channel` is message oriented and full duplex: each ``send`` on one
  side is one ``recv`` on the other, in order, with the bytes unchanged.
* Every blocking call takes a timeout in seconds and raises
  :class:`TransportTimeout` when it expires; a peer that went away raises
  :class:`PeerClosed`; any other library failure is wrapped in
  :class:`TransportError` (``raise TransportError(...) from exc``).
* ``close`` is idempotent and never raises.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar, cast


class TransportError(Exception):
    """A transport failed; the message says what and where."""


class TransportTimeout(TransportError):
    """A blocking transport call did not complete within its timeout."""


class PeerClosed(TransportError):
    """The other side closed the channel or went away."""


MODES = ("latency", "throughput")


@dataclass(frozen=True)
class Endpoint:
    """Where the two sides find each other, as seen from inside a container.

    ``host`` is the server container's name on the lab network, ``port`` a
    TCP port the server may bind, ``shared_dir`` a directory on a volume that
    both containers mount at the same path.
    """

    host: str
    port: int
    shared_dir: str
    #: Addresses of the services a transport needs, by service name, e.g.
    #: ``{"mqtt": "broker:1883", "postgres": "host=db port=5432 dbname=cell3 user=bench"}``.
    #: A service is reset between cells (a fresh database, topic prefix, ...).
    services: dict[str, str] = field(default_factory=dict)


class Channel(ABC):
    """One full-duplex, message-oriented conversation between the two sides."""

    @abstractmethod
    def send(self, message: bytes, timeout: float) -> None:
        """Send one message; returns when the transport has accepted it."""

    @abstractmethod
    def recv(self, timeout: float) -> bytes:
        """Return the next whole message from the peer."""

    @abstractmethod
    def close(self) -> None:
        """Release the channel; idempotent, never raises."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener(ABC):
    """The server side's bound endpoint, ready to accept the client."""

    @abstractmethod
    def accept(self, timeout: float) -> Channel:
        """Wait for the client and return the channel to it."""

    @abstractmethod
    def close(self) -> None:
        """Release the endpoint; idempotent, never raises."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Options:
    """Base of every transport's options: a frozen dataclass of typed defaults."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OptionsT = TypeVar("OptionsT", bound=Options)


class Transport(ABC, Generic[OptionsT]):
    """A way of moving messages; subclasses are registered by ``name``.

    Generic in its options type: ``class TcpTransport(Transport[TcpOptions])``
    makes ``self.options`` a ``TcpOptions`` for the type checker.
    """

    name: ClassVar[str]
    #: Variants this transport offers; an empty tuple means "no variant".
    variants: ClassVar[tuple[str, ...]] = ()
    #: The frozen dataclass of this transport's options.
    options_type: ClassVar[type[Options]] = Options
    #: The largest user payload, in bytes, this transport carries.
    max_payload: ClassVar[int] = 1 << 20
    #: One line for ``ipcbench list``: what crosses between the containers.
    summary: ClassVar[str] = ""
    #: Whether the transport promises delivery, once and in order. Where it
    #: does, a lost, duplicated, reordered or corrupt message fails the cell;
    #: where it does not (e.g. MQTT QoS 0), loss is a measured result.
    guarantees_delivery: ClassVar[bool] = True
    #: Services this transport needs, by name in ``bench.services`` (e.g. ``("mqtt",)``).
    services: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def stream_window(cls, variant: str | None) -> int | None:
        """In throughput mode, the most messages in flight; ``None`` lets the benchmark choose.

        A request/response variant (HTTP, ZeroMQ REQ/REP) returns 1: each
        response is the credit for the next request.
        """
        return None

    @classmethod
    def delivers(cls, variant: str | None) -> bool:
        """Whether ``variant`` promises delivery once and in order (override per variant)."""
        return cls.guarantees_delivery

    def __init__(self, *, variant: str | None, mode: str, options: OptionsT | None = None):
        if variant not in (self.variants or (None,)):
            raise ValueError(f"{self.name} has no variant {variant!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.variant = variant
        self.mode = mode
        self.options: OptionsT = (
            options if options is not None else cast(OptionsT, self.options_type())
        )

    @classmethod
    def how(cls, variant: str | None, mode: str) -> str | None:
        """How this variant does ``mode`` (shown by ``ipcbench list``).

        ``None`` means the variant cannot do the mode; such cells are skipped
        with a note, not failed.
        """
        return (
            "request and reply on the same channel"
            if mode == "latency"
            else ("one-way stream; the receiver returns credits on the same channel")
        )

    @abstractmethod
    def listen(self, endpoint: Endpoint) -> Listener:
        """Bind the server side; returns when a client may connect."""

    @abstractmethod
    def connect(self, endpoint: Endpoint, timeout: float) -> Channel:
        """Connect the client side; retries until ``timeout`` while the server is not up."""

    def settings(self) -> dict[str, Any]:
        """The effective settings, written into the results of every cell."""
        return {"variant": self.variant, "mode": self.mode, **self.options.as_dict()}
