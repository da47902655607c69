"""One container of the command line, from its record to its end.

A :class:`Session` is what owns a CLI container: its own
:class:`~runtime.local.LocalRuntime` (so a run id, state and gc protection of
its own), the lab network when ``--network lab``, the container, and the
port proxies. It lives in the ``run`` command for a foreground container and
in a monitor process (``runtime/monitor.py``) for ``-d``; either way the
record (``runtime/records.py``) names it as the owner, and when it goes, the
container goes (EOF on the control pipe).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Self

from runtime.container import Container, ContainerSpec, Volume
from runtime.local import LocalRuntime
from runtime.network import LabNetwork
from runtime.proxy import PortProxy
from runtime.records import Record


def spec_of(config: dict[str, Any], *, attach: bool, log_dir: Path) -> ContainerSpec:
    """The ContainerSpec a record's config asks for (``attach``: the caller relays stdio)."""
    tty = attach and bool(config.get("tty"))
    return ContainerSpec(
        name=config["name"],
        command=tuple(config["command"]),
        hostname=config.get("hostname"),
        env=dict(config.get("env", {})),
        volumes=tuple(Volume(**v) for v in config.get("volumes", [])),
        cwd=config.get("cwd") or "/",
        user=tuple(config["user"]) if config.get("user") else None,
        stdin_pipe=attach and not tty and bool(config.get("interactive")),
        stdout_pipe=attach and not tty,
        stderr_pipe=attach and not tty,
        tty=tty,
        log_dir=None if attach else str(log_dir),
        rootfs=config.get("rootfs"),
        **config.get("limits", {}),
    )


class Session:
    """Start a record's container (with its network and proxies); release it all on exit."""

    def __init__(self, record: Record, *, attach: bool):
        self.record, self.attach = record, attach
        self.config = record.config()
        self.runtime = LocalRuntime()
        self.network: LabNetwork | None = None
        self.container: Container | None = None
        self.proxies: list[PortProxy] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Container:
        self.runtime.__enter__()
        if self.config.get("network", "lab") == "lab":
            self.network = self.runtime.network()
        spec = spec_of(self.config, attach=self.attach, log_dir=self.record.dir)
        self.container = self.runtime.container(spec, self.network)
        self.container.start()
        self._publish(self.container)
        self.record.update(
            run_id=self.runtime.run_id,
            pid1=self.container.pid1,
            address=self.container.address,
            lab_pid=self.network.holder_pid if self.network else None,
        )
        self.record.set_status("running", started=time.time())
        return self.container

    def _publish(self, c: Container) -> None:
        for host_port, ctr_port in self.config.get("ports", []):
            if self.network is not None and c.address:
                target, netns = (c.address, ctr_port), f"/proc/{self.network.holder_pid}/ns/net"
            else:  # no lab: connect from inside the container's own namespace
                target, netns = ("127.0.0.1", ctr_port), f"/proc/{c.pid1}/ns/net"
            proxy = PortProxy(host_port=host_port, target=target, netns_path=netns)
            self.proxies.append(proxy)
            proxy.start()

    def finish(self, status: int) -> None:
        """Record how the container ended (call while its cgroup still exists)."""
        oom = bool(self.container and self.container.oom_killed())
        self.record.set_status("exited", exit_code=status, oom_killed=oom, finished=time.time())

    def close(self) -> None:
        """Stop the proxies and the container, close the runtime; idempotent."""
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                proxy.close()
        self.proxies.clear()
        if self.container is not None:
            self.container.remove(grace=2.0)
        self.runtime.close()
