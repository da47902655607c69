"""The ``postgres`` service and the ``postgres`` transport, against a real PostgreSQL 18.

The server runs in its own container on the lab network, as an unprivileged
user; both transport sides run in containers too (the host cannot reach the lab).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from bench.services.postgres import PostgresService
from bench.services.set import ServiceSet
from runtime.local import LocalRuntime
from tests.conformance_pairs import Lab, open_container_pair
from transports.base import PeerClosed

pytestmark = [pytest.mark.timeout(180), pytest.mark.needs_root]

COUNT_ROWS = """
import json, psycopg
with psycopg.connect({conninfo!r}, autocommit=True) as conn:
    schema = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    rows = conn.execute(f"SELECT (SELECT count(*) FROM {{schema}}.to_server)"
                        f" + (SELECT count(*) FROM {{schema}}.to_client)").fetchone()[0]
    print(json.dumps({{"schema": schema, "rows": rows}}))
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with LocalRuntime() as rt, rt.network() as net, ServiceSet(rt, net, ["postgres"]) as services:
        yield Lab(rt, net, services)


def service(lab: Lab) -> PostgresService:
    started = lab.services.started["postgres"]
    assert isinstance(started, PostgresService)
    return started


def test_the_service_is_postgres_18_tuned_for_a_benchmark(lab: Lab) -> None:
    settings = service(lab).settings()
    assert settings["server_version"].startswith("18")
    server = settings["server"]
    assert server["fsync"] == "off" and server["synchronous_commit"] == "off"
    assert settings["user"] == "70000:70000"
    json.dumps(settings)


def test_reset_names_a_fresh_schema_per_cell_without_a_round_trip(lab: Lab) -> None:
    began = time.monotonic()
    first, second = service(lab).ensure(1001), service(lab).ensure(1002)
    assert time.monotonic() - began < 0.1, "reset runs before every cell: it must be cheap"
    assert "search_path=cell1001" in first and "search_path=cell1002" in second


@pytest.mark.parametrize("variant", ["poll", "notify"])
def test_messages_are_consumed_rows(lab: Lab, variant: str) -> None:
    with open_container_pair(lab, "postgres", variant, "throughput") as (server, client):
        for i in range(50):
            client.send(i.to_bytes(2, "big") * 600, 5.0)
        assert [server.recv(5.0) for _ in range(50)] == [
            i.to_bytes(2, "big") * 600 for i in range(50)
        ]
        server.send(b"credit", 5.0)
        assert client.recv(5.0) == b"credit"
        # The pair's own cell schema is the most recent one the service handed out.
        conninfo = service(lab).reset(_last_index(lab))
        out = service(lab).probe(COUNT_ROWS.format(conninfo=conninfo))
        found = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
        assert found["rows"] == 0, "received rows must be deleted"


@pytest.mark.parametrize("variant", ["poll", "notify"])
def test_a_killed_peer_is_reported_quickly(lab: Lab, variant: str) -> None:
    with open_container_pair(lab, "postgres", variant, "latency") as (server, client):
        client.send(b"hello", 5.0)
        assert server.recv(5.0) == b"hello"
        lab.rt.get("client").signal(signal.SIGKILL)  # no close(): the kernel ends its session
        began = time.monotonic()
        with pytest.raises(PeerClosed):
            server.recv(10.0)
        assert time.monotonic() - began < 2.0


def _last_index(lab: Lab) -> int:
    # open_container_pair numbers its volumes conformance-<index> with the cell's index.
    volumes = lab.rt.state_dir / "volumes"
    return max(int(p.name.rsplit("-", 1)[1]) for p in volumes.glob("conformance-*"))
