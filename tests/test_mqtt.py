"""MQTT-specific behaviour, between real containers and a real mosquitto.

* a subscriber that joins late loses nothing once the readiness proof is done;
* a broker killed mid-cell fails that cell with its cause, and the next cell
  runs (the service is restarted);
* QoS 0 loss is a measured result: counted, and the cell stays ok.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

import pytest

from bench.cell import run_cell
from bench.scenario import Cell
from bench.services.mosquitto import BrokerConfig, MosquittoService
from runtime import PROJECT_ROOT
from runtime.container import Container, ContainerSpec, Volume
from runtime.local import LocalRuntime
from runtime.network import LabNetwork
from tests.conformance_pairs import CONTAINER_ENDPOINT, PeerChannel

pytestmark = [pytest.mark.needs_root, pytest.mark.timeout(180)]


@pytest.fixture
def lab(rt: LocalRuntime) -> Iterator[LabNetwork]:
    with rt.network() as net:
        yield net


@pytest.fixture
def broker(rt: LocalRuntime, lab: LabNetwork) -> Iterator[MosquittoService]:
    service = MosquittoService(rt, lab, rt.state_dir / "mqtt")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _peer(rt: LocalRuntime, net: LabNetwork, role: str, variant: str, address: str) -> Container:
    spec = {
        "role": role, "transport": "mqtt", "variant": variant, "mode": "latency",
        "endpoint": {**vars(CONTAINER_ENDPOINT), "services": {"mqtt": address}},
        "timeout": 15.0,
    }  # fmt: skip
    c = rt.container(
        ContainerSpec(
            name=role,
            command=(sys.executable, "-m", "tests.container_peer", json.dumps(spec)),
            volumes=(Volume(str(rt.volume(f"peer-{role}")), CONTAINER_ENDPOINT.shared_dir),),
            cwd=str(PROJECT_ROOT),
            stdin_pipe=True,
            stdout_pipe=True,
        ),
        net,
    )
    c.start()
    return c


def test_a_late_subscriber_loses_nothing_after_the_readiness_proof(
    rt: LocalRuntime, lab: LabNetwork, broker: MosquittoService
) -> None:
    address = broker.reset(0)
    began = time.monotonic()
    with _peer(rt, lab, "client", "qos0", address) as client_box:
        # The client is up and publishing hellos; nobody subscribes to them yet.
        time.sleep(1.5)
        with _peer(rt, lab, "server", "qos0", address) as server_box:
            server, client = PeerChannel(server_box), PeerChannel(client_box)
            assert server.answer() == "listening"
            assert server.answer() == "connected"
            assert client.answer() == "connected"
            # connect returned only once the late server had subscribed.
            assert time.monotonic() - began >= 1.5
            messages = [i.to_bytes(4, "big") * 16 for i in range(2000)]
            sending = threading.Thread(target=lambda: [client.send(m, 5.0) for m in messages])
            sending.start()
            received = [server.recv(5.0) for _ in messages]
            sending.join(30)
            assert received == messages  # QoS 0, and not one lost to the late join


def _killing_cell() -> Cell:
    return Cell("mqtt", "qos1", "latency", 64, messages=5_000_000, warmup=10)


def test_a_killed_broker_fails_its_cell_with_the_cause_and_the_next_cell_runs(
    rt: LocalRuntime, lab: LabNetwork, broker: MosquittoService
) -> None:
    first_broker = broker.container
    assert first_broker is not None
    killed: list[float] = []

    def kill_mid_cell() -> None:  # the cell runs in the main thread (the lab's netlink is)
        _wait_for_exchange(rt)
        killed.append(time.monotonic())
        first_broker.signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_mid_cell, daemon=True)
    killer.start()
    outcome = run_cell(rt, lab, _killing_cell(), index=0, op_timeout=5.0, options={},
                       services={"mqtt": broker})  # fmt: skip
    killer.join(1)
    assert killed, "the cell ended before the broker could be killed"
    assert time.monotonic() - killed[0] < 10, "a dead broker must fail the cell quickly"
    assert outcome["status"] == "failed"
    assert "broker" in outcome["error"], outcome["error"]
    # The next cell restarts the broker (ensure) and runs normally.
    after = run_cell(rt, lab, replace(_killing_cell(), messages=200), index=1, op_timeout=5.0,
                     options={}, services={"mqtt": broker})  # fmt: skip
    assert after["status"] == "ok", after["error"]
    assert broker.container is not first_broker and broker.alive()


def _wait_for_exchange(rt: LocalRuntime, timeout: float = 20.0) -> None:
    """Until the client agent is running and has had time to prove readiness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if rt.get("client").running():
                time.sleep(1.5)  # readiness ping, warm-up, well into the measured phase
                return
        except KeyError:
            pass
        time.sleep(0.05)


class TinyQueueBroker(MosquittoService):
    """A broker that drops QoS 0 as soon as one packet waits for a subscriber."""

    config: ClassVar[BrokerConfig] = BrokerConfig(max_queued_messages=1)


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_qos0_loss_is_counted_not_hidden(rt: LocalRuntime, lab: LabNetwork, mode: str) -> None:
    service = TinyQueueBroker(rt, lab, rt.state_dir / "mqtt")
    try:
        service.start()
        if mode == "throughput":
            # A flood into a subscriber with a small receive buffer: the broker's
            # outgoing queue to it fills, and mosquitto drops QoS 0 messages.
            cell = Cell("mqtt", "qos0", "throughput", 65536, messages=3000, warmup=64)
            options, faults = {"rcvbuf": 4096}, None
        else:  # loss injected on the real channel, by sequence number
            cell = Cell("mqtt", "qos0", "latency", 64, messages=300, warmup=10)
            options, faults = {}, {"drop": [5, 50, 150]}
        result = run_cell(rt, lab, cell, index=0, op_timeout=5.0, options=options,
                          faults=faults, services={"mqtt": service})  # fmt: skip
    finally:
        service.stop()
    assert result["status"] == "ok", result["error"]
    counts = result["messages"]
    assert counts["lost"] > 0, counts
    if faults:
        assert counts["lost"] == 3, counts
    assert counts["received"] + counts["lost"] == counts["sent"], counts
