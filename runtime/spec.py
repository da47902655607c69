"""What a container is asked to be: :class:`ContainerSpec`, its volumes, its start errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.limits import Limits

# Docker's conventions for failures of the runtime itself.
EXIT_RUNTIME, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND = 125, 126, 127

# The init is started with -S (no site-packages) for speed: it needs only the stdlib.
DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class ContainerError(Exception):
    """A container could not be started; ``exit_code`` follows Docker (125/126/127)."""

    def __init__(self, message: str, exit_code: int = EXIT_RUNTIME):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Volume:
    source: str  # a host directory
    target: str  # where it appears inside the container
    readonly: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    command: tuple[str, ...]
    hostname: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    volumes: tuple[Volume, ...] = ()
    cwd: str = "/"
    user: tuple[int, int] | None = None  # (uid, gid) the workload runs as; None: root
    stdin_pipe: bool = False  # keep a pipe to the workload's stdin
    stdout_pipe: bool = False  # read the workload's stdout from a pipe (else: a log file)
    stderr_pipe: bool = False  # read the workload's stderr from a pipe (else: a log file)
    tty: bool = False  # stdio is a new pty; the harness holds its master (``pty_master``)
    log_dir: str | None = None  # where stdout.log/stderr.log go (default: the state dir)
    rootfs: str | None = None  # an unpacked image as / (default: the host's dirs, read-only)
    cpus: float | None = None  # a CFS quota, in CPUs (Docker's --cpus)
    cpuset_cpus: str | None = None  # the CPUs it may run on, e.g. "0-1" (--cpuset-cpus)
    memory: int | None = None  # bytes; going over ends it with oom_killed() true (--memory)
    pids_limit: int | None = None  # most tasks at once (--pids-limit)

    @property
    def limits(self) -> Limits:
        return Limits(self.cpus, self.cpuset_cpus, self.memory, self.pids_limit)
