"""Services some transports need (an MQTT broker, a database), each in its own container.

A service is started once per run, on the lab network, only when a selected
transport names it in ``Transport.services``; it is *ready* only when a real
client round trip through it succeeded. Before every cell it is reset (a
fresh database, a fresh topic prefix) and, if it died (a killed broker fails
its cell, not the run), started again. Its container's CPU time is sampled at
the cell's marks like the client's and server's, under its role name.

Adding a service: a module here with a :class:`Service` subclass, and one
line in :data:`REGISTRY`.
"""

from __future__ import annotations

import subprocess
import sys
from abc import ABC, abstractmethod
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

from runtime import PROJECT_ROOT
from runtime.container import Container, ContainerError, ContainerSpec
from runtime.local import LocalRuntime
from runtime.network import LabNetwork

# service name (as in Transport.services) -> "module:Class"
REGISTRY: dict[str, str] = {
    "postgres": "bench.services.postgres:PostgresService",
    "mqtt": "bench.services.mosquitto:MosquittoService",
}


class ServiceError(Exception):
    """A service could not be started, proven ready or reset."""


class Service(ABC):
    """One service container of a run."""

    #: The name transports ask for, and the key in ``Endpoint.services``.
    name: ClassVar[str]
    #: The container's name on the lab network, and its role in ``cpu_us_per_msg``.
    role: ClassVar[str]

    def __init__(self, rt: LocalRuntime, net: LabNetwork, work_dir: Path):
        self.rt, self.net, self.work_dir = rt, net, work_dir
        self.container: Container | None = None

    @abstractmethod
    def start(self) -> None:
        """Start the container and return once a real client round trip succeeded."""

    @abstractmethod
    def reset(self, cell_index: int) -> str:
        """Prepare a clean slate for a cell; return its address for ``Endpoint.services``."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The configuration and version, written into the run's results."""

    def probe(self, code: str, *, name: str = "probe", timeout: float = 20.0) -> str:
        """Run Python ``code`` in a short-lived container on the lab network; its stdout.

        The harness lives in the host's network namespace and cannot reach the
        lab, so a readiness round trip (or a reset that needs a client) runs
        from a container of its own. A non-zero exit raises ServiceError with
        the tail of the probe's output.
        """
        spec = ContainerSpec(name=f"{self.role}-{name}", command=(sys.executable, "-c", code),
                             cwd=str(PROJECT_ROOT))  # fmt: skip
        with self.rt.container(spec, self.net) as c:
            try:
                c.start()
                status = c.wait(timeout)
            except (ContainerError, subprocess.TimeoutExpired) as exc:
                raise ServiceError(f"{self.name} probe did not finish: {exc}") from exc
            out = c.logs()
        if status != 0:
            tail = " | ".join(out.strip().splitlines()[-3:])
            raise ServiceError(f"{self.name} probe failed (exit {status}): {tail}")
        return out

    def alive(self) -> bool:
        return self.container is not None and self.container.running()

    def ensure(self, cell_index: int) -> str:
        """Start (or restart, after a crash) if needed, then reset for the cell."""
        if not self.alive():
            self.stop()
            self.start()
        return self.reset(cell_index)

    def cpu_ns(self) -> int:
        return self.container.cpu_ns() if self.container is not None else 0

    def stop(self) -> None:
        """Stop and remove the container; idempotent."""
        if self.container is not None:
            container, self.container = self.container, None
            container.remove(grace=2.0)


def get(name: str) -> type[Service]:
    module_name, _, class_name = REGISTRY[name].partition(":")
    cls: type[Service] = getattr(import_module(module_name), class_name)
    return cls
