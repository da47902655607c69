"""Containers of the command line, known across invocations: one directory each.

``/run/ipcbench/containers/<name>/`` holds

``config.json``
    what was asked (image, command, env, user, network, ports, limits) and,
    once started, the run id, the host pid of pid 1 and the lab address
``owner.json``
    the process that holds the container's control pipe: the ``run`` command
    itself in the foreground, a monitor process (``runtime.monitor``) for
    ``-d``. The container lives exactly as long as its owner.
``status.json``
    ``created`` → ``running`` → ``exited`` with the exit code and whether the
    OOM killer ended it. A record whose owner died before writing ``exited``
    is *dead* (its kernel objects are gc's business, and so is the record).
``stdout.log``, ``stderr.log``, ``monitor.log``
    what the workload (and, for ``-d``, its monitor) wrote.

A record appears whole, by one rename, so a concurrent gc never sees one
without its owner. Exited records stay until ``rm`` (as Docker's do).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from runtime.gc import RECORDS_DIR, process_start_ticks
from runtime.local import STATE_ROOT

RECORDS = STATE_ROOT / RECORDS_DIR
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")


class RecordError(Exception):
    """No such container, a name in use, or a container in the wrong state."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)  # readers never see half a file


def owner_of(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start_ticks": process_start_ticks(pid)}


class Record:
    def __init__(self, directory: Path):
        self.dir = directory
        self.name = directory.name

    @classmethod
    def create(cls, name: str, config: dict[str, Any], root: Path = RECORDS) -> Record:
        if not NAME.fullmatch(name):
            raise RecordError(f"invalid container name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        _write_json(staging / "config.json", {**config, "name": name})
        _write_json(staging / "owner.json", owner_of(os.getpid()))
        _write_json(staging / "status.json", {"state": "created"})
        try:
            staging.rename(root / name)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise RecordError(f"the container name {name!r} is already in use") from None
        return cls(root / name)

    @classmethod
    def get(cls, name: str, root: Path = RECORDS) -> Record:
        if not NAME.fullmatch(name) or not (root / name / "config.json").exists():
            raise RecordError(f"no such container: {name}")
        return cls(root / name)

    @classmethod
    def all(cls, root: Path = RECORDS) -> list[Record]:
        if not root.is_dir():
            return []
        return [cls(d) for d in sorted(root.iterdir()) if NAME.fullmatch(d.name)]

    def _read(self, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def config(self) -> dict[str, Any]:
        return self._read("config.json")

    def status(self) -> dict[str, Any]:
        return self._read("status.json")

    def update(self, **fields: Any) -> None:
        _write_json(self.dir / "config.json", {**self.config(), **fields})

    def set_status(self, state: str, **fields: Any) -> None:
        _write_json(self.dir / "status.json", {"state": state, **fields})

    def take_ownership(self) -> None:
        _write_json(self.dir / "owner.json", owner_of(os.getpid()))

    def owner_alive(self) -> bool:
        owner = self._read("owner.json")
        return bool(owner) and process_start_ticks(owner["pid"]) == owner["start_ticks"]

    def owner_pid(self) -> int | None:
        pid = self._read("owner.json").get("pid")
        return int(pid) if pid is not None else None

    def state(self) -> str:
        """``created``, ``running``, ``exited`` or ``dead`` (the owner died mid-way)."""
        state = str(self.status().get("state", "dead"))
        if state != "exited" and not self.owner_alive():
            return "dead"
        return state

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # the last record takes the directory with it


def sweep_dead(root: Path = RECORDS) -> list[str]:
    """Remove records whose owner died before the container exited (for gc)."""
    removed = []
    for record in Record.all(root):
        if record.state() == "dead":
            record.remove()
            removed.append(f"record {record.dir}")
    return removed
