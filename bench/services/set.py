"""The services of one run: started together, stopped together, whatever happens."""

from __future__ import annotations

import logging
from typing import Any, Self

import transports
from bench import services
from bench.scenario import Scenario
from bench.services import Service, ServiceError
from runtime.local import LocalRuntime
from runtime.network import LabNetwork

log = logging.getLogger(__name__)


def needed_services(scenario: Scenario) -> list[str]:
    """The services the scenario's transports need, each once, in a stable order."""
    names = (n for t, _ in scenario.transports for n in transports.get(t).services)
    return list(dict.fromkeys(names))


class ServiceSet:
    """A context manager holding the run's started services by name."""

    def __init__(self, rt: LocalRuntime, net: LabNetwork, names: list[str]):
        self.rt, self.net, self.names = rt, net, names
        self.started: dict[str, Service] = {}

    def __enter__(self) -> Self:
        try:
            for name in self.names:
                service = services.get(name)(self.rt, self.net, self.rt.state_dir / name)
                self.started[name] = service
                try:
                    service.start()
                except ServiceError as exc:
                    # Not fatal to the run: each cell that needs it retries, and fails
                    # with this cause if the service still cannot start.
                    log.warning("%s did not start: %s", name, exc)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settings(self) -> dict[str, Any]:
        return {name: s.settings() for name, s in self.started.items()}

    def close(self) -> None:
        for service in reversed(list(self.started.values())):
            try:
                service.stop()
            except Exception as exc:  # keep stopping the others
                log.warning("stopping %s: %s", service.name, exc)
        self.started.clear()
