"""One side of a transport, run inside a real container and driven line by line.

``python -m tests.container_peer '<json>'`` opens the server or client side of
a transport, then obeys JSON commands on stdin (``send``, ``recv``, ``close``,
``exit``) and answers each with one JSON line on stdout. The conformance
suite's container placement wraps it in :class:`tests.conformance_pairs.PeerChannel`,
so the same test bodies run with the two sides in two containers on the lab
network (tcp) or on a shared volume (uds).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import transports
from transports.base import Channel, Endpoint, TransportError


def reply(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def open_side(spec: dict[str, Any]) -> Channel:
    cls = transports.get(spec["transport"])
    side = cls(variant=spec["variant"], mode=spec["mode"])
    endpoint = Endpoint(**spec["endpoint"])
    if spec["role"] == "client":
        return side.connect(endpoint, spec["timeout"])
    listener = side.listen(endpoint)
    reply(ok="listening")
    try:
        return listener.accept(spec["timeout"])
    finally:
        listener.close()


def obey(channel: Channel, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "send":
        channel.send(base64.b64decode(command["data"]), command["timeout"])
        return None
    if op == "recv":
        return base64.b64encode(channel.recv(command["timeout"])).decode()
    if op == "close":
        channel.close()
        return None
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        channel = open_side(spec)
    except TransportError as exc:
        reply(error=type(exc).__name__, message=str(exc))
        return 1
    reply(ok="connected")
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "exit":
            break
        try:
            reply(ok=obey(channel, command))
        except TransportError as exc:
            reply(error=type(exc).__name__, message=str(exc))
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
