"""The owner of a detached container (``ipcbench container run -d``), Podman's conmon.

``python -m runtime.monitor NAME`` takes over the record (``owner.json``),
starts the container through a :class:`~runtime.session.Session`, writes one
line on stdout (``started`` or ``error <code> <message>``) for the ``run``
command waiting on it, and then lives exactly as long as the container: it
holds the control pipe, the lab network and the port proxies, records the
exit status, releases everything and, with ``--rm``, removes the record.
SIGTERM or SIGINT to the monitor stops the container (TERM, then KILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from runtime.container import ContainerError
from runtime.records import Record
from runtime.session import Session


def _daemonize_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)


def main(name: str) -> int:
    record = Record.get(name)
    record.take_ownership()
    stop_at: list[float] = []
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_at.append(time.monotonic()))
    with Session(record, attach=False) as session:
        try:
            container = session.start()
        except (ContainerError, OSError) as exc:
            code = exc.exit_code if isinstance(exc, ContainerError) else 125
            print(f"error {code} {exc}", flush=True)
            record.remove()
            return code
        print("started", flush=True)
        _daemonize_stdio()
        while True:
            if stop_at:
                container.signal(signal.SIGTERM)
                if time.monotonic() - stop_at[0] > 10:
                    container.signal(signal.SIGKILL)
            try:
                status = container.wait(timeout=0.1 if stop_at else 1.0)
                break
            except subprocess.TimeoutExpired:
                continue
        session.finish(status)
    if record.config().get("rm"):
        record.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
