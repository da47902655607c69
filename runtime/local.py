"""The local backend: containers on this machine's namespaces and cgroups.

One :class:`LocalRuntime` per run. It owns the run's state directory
(``/run/ipcbench/<run-id>``, with an ``owner.json`` naming the controlling
process), its lab networks, volumes and containers, and releases all of them
on exit, whatever the path out. Before it starts, it sweeps what dead runs
left behind (:mod:`runtime.gc`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from runtime import cgroups, crashpoint, gc
from runtime.container import Container, ContainerSpec
from runtime.network import LabNetwork

log = logging.getLogger(__name__)

STATE_ROOT = Path("/run/ipcbench")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class LocalRuntime:
    name = "local"

    def __init__(self, run_id: str | None = None, state_root: Path = STATE_ROOT):
        self.run_id = run_id or new_run_id()
        self.state_root = state_root
        self.state_dir = state_root / self.run_id
        self.layout = cgroups.detect()
        self._containers: dict[str, Container] = {}
        self._networks: list[LabNetwork] = []

    def __enter__(self) -> Self:
        gc.sweep(self.state_root, self.layout)
        # The state dir appears whole, owner.json included, by one rename: a
        # concurrent run's sweep must never see it without its owner.
        self.state_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=gc.STAGING_PREFIX, dir=self.state_root))
        owner = {"pid": os.getpid(), "start_ticks": gc.process_start_ticks(os.getpid())}
        (staging / "owner.json").write_text(json.dumps(owner))
        # Traversable by the unprivileged users some services run as (mkdtemp made it 0700).
        staging.chmod(0o755)
        staging.rename(self.state_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cgroup_layout": self.layout.describe(),
            "namespaces": ["pid", "mount", "uts", "ipc", "net"],
        }

    def network(self) -> LabNetwork:
        net = LabNetwork(run_id=self.run_id, state_dir=self._subdir(f"net{len(self._networks)}"))
        self._networks.append(net)
        net.open()
        return net

    def volume(self, name: str) -> Path:
        path = self._subdir("volumes") / name
        path.mkdir()
        return path

    def container(self, spec: ContainerSpec, network: LabNetwork | None = None) -> Container:
        """A container handle (not started); use it as a context manager."""
        if spec.name in self._containers:
            raise ValueError(f"a container named {spec.name!r} exists already in this run")
        c = Container(self, spec, network)
        self._containers[spec.name] = c
        return c

    def get(self, name: str) -> Container:
        """The live container named ``name`` (KeyError if there is none)."""
        return self._containers[name]

    def forget(self, container: Container) -> None:
        if self._containers.get(container.spec.name) is container:
            del self._containers[container.spec.name]
            shutil.rmtree(container.dir, ignore_errors=True)

    def _subdir(self, name: str) -> Path:
        path = self.state_dir / name
        path.mkdir(exist_ok=True)
        return path

    def close(self) -> None:
        """Remove every container, network and the state dir; idempotent."""
        errors: list[str] = []
        for c in list(self._containers.values()):
            try:
                c.remove(grace=0.5)
            except Exception as exc:
                errors.append(f"{c.spec.name}: {exc}")
        crashpoint.reached("runtime-close")
        for net in self._networks:
            net.close()
        self._networks.clear()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if errors:
            log.warning("cleanup problems: %s", "; ".join(errors))
