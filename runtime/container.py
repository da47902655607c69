"""A container as the harness sees it: spec in, handle out.

:class:`Container` is a context manager. ``start`` returns once the workload's
``exec`` has succeeded inside fresh namespaces (or raises
:class:`ContainerError` carrying Docker's exit-code convention); leaving the
context stops the container (TERM, then KILL after a grace period), detaches
it from the lab network, removes its cgroup and its state, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from runtime import PROJECT_ROOT, crashpoint, init, init_command, limits
from runtime.cgroups import Cgroup
from runtime.limits import CpuStats
from runtime.lines import LineReader
from runtime.spec import DEFAULT_ENV, EXIT_RUNTIME, ContainerError, ContainerSpec, Volume

__all__ = ["EXIT_RUNTIME", "Container", "ContainerError", "ContainerSpec", "Volume"]

if TYPE_CHECKING:
    from runtime.local import LocalRuntime
    from runtime.network import LabNetwork

# Top-level host directories a container gets fresh, private copies of.
PRIVATE_TOP = ("/tmp", "/run", "/dev", "/proc", "/sys")


def software_volumes() -> list[Volume]:
    """Read-only binds of this project and its interpreter when they live under a private top.

    A container sees the host's directories read-only, except /tmp, /run, ...
    which it gets fresh. A checkout or virtualenv under /tmp would vanish
    inside, so it is bound back at the same path, read-only.
    """
    wanted = {
        PROJECT_ROOT,
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(os.path.realpath(sys.executable)).parent,
    }
    under = [p for p in wanted if any(p.is_relative_to(top) for top in PRIVATE_TOP)]
    # The outermost paths suffice: a bind of /tmp/x covers /tmp/x/.venv.
    outer = [p for p in under if not any(p != q and p.is_relative_to(q) for q in under)]
    return [Volume(str(p), str(p), readonly=True) for p in sorted(outer)]


class Container:
    def __init__(self, runtime: LocalRuntime, spec: ContainerSpec, network: LabNetwork | None):
        self.runtime, self.spec, self.network = runtime, spec, network
        self.dir = runtime.state_dir / "containers" / spec.name
        self.cgroup: Cgroup | None = None
        self.shim: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None  # host pid of the container's pid 1
        self.address: str | None = None
        self._control: int | None = None
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self.pty_master: int | None = None  # with spec.tty: the pty's master end, ours to close
        self.log_dir = Path(spec.log_dir) if spec.log_dir else self.dir
        self._console: str | None = None
        self.exit_code: int | None = None
        self._oom_killed = False

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def start(self, timeout: float = 10.0) -> Self:
        self.dir.mkdir(parents=True)
        (self.dir / "root").mkdir()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.cgroup = Cgroup(
            self.runtime.layout,
            self.runtime.run_id,
            self.spec.name,
            cpuset=self.spec.cpuset_cpus is not None,
        )
        limits.apply(self.cgroup, self.spec.limits)
        control_r, self._control = os.pipe()
        events_r, events_w = os.pipe()
        try:
            self._spawn(control_r, events_w)
        finally:
            os.close(control_r)
            os.close(events_w)
        with os.fdopen(events_r, "rb", buffering=0) as events:
            self._handshake(events, time.monotonic() + timeout)
        crashpoint.reached("container-started")
        return self

    def _stdio(self) -> tuple[Any, Any, Any]:
        """The shim's stdin, stdout and stderr (files opened here are closed after the spawn)."""
        spec, logs = self.spec, self.log_dir
        if spec.tty:
            self.pty_master, slave = os.openpty()
            os.set_inheritable(self.pty_master, False)
            self._console = os.ttyname(slave)
            return slave, slave, slave
        stdin = subprocess.PIPE if spec.stdin_pipe else subprocess.DEVNULL
        stdout = subprocess.PIPE if spec.stdout_pipe else open(logs / "stdout.log", "ab")  # noqa: SIM115
        stderr = subprocess.PIPE if spec.stderr_pipe else open(logs / "stderr.log", "ab")  # noqa: SIM115
        return stdin, stdout, stderr

    def _spawn(self, control_r: int, events_w: int) -> None:
        spec = self.spec
        cmd = init_command("shim", str(control_r), str(events_w), f"ipcbench-{self.runtime.run_id}")
        stdio = self._stdio()
        try:
            self.shim = subprocess.Popen(
                cmd,
                pass_fds=(control_r, events_w),
                start_new_session=True,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
            )
        finally:
            for stream in set(stdio):
                if isinstance(stream, int) and stream >= 0:
                    os.close(stream)  # the pty's slave: only the container holds it now
                elif hasattr(stream, "close"):
                    stream.close()
        self.stdin, self.stdout, self.stderr = self.shim.stdin, self.shim.stdout, self.shim.stderr
        # The harness moves the shim into the cgroups while the shim's interpreter
        # starts: the first move pays an RCU grace period (~10 ms), now overlapped.
        for procs in self.cgroup.procs_files if self.cgroup else []:
            with open(procs, "w") as f:
                f.write(str(self.shim.pid))
        volumes = [] if spec.rootfs else software_volumes()
        init_spec = {
            "root": str(self.dir / "root"),
            "image": spec.rootfs,
            "hostname": spec.hostname or spec.name,
            "command": list(spec.command),
            "env": {**DEFAULT_ENV, **spec.env},
            "cwd": spec.cwd,
            "user": list(spec.user) if spec.user else None,
            "tty": spec.tty,
            "console": self._console,
            "cgroup_procs": [],  # joined already (above)
            "volumes": [vars(v) for v in (*volumes, *spec.volumes)],
            "files": self._files(),
        }
        os.write(self._control_fd, (init.encode(init_spec) + "\n").encode())

    @property
    def _control_fd(self) -> int:
        assert self._control is not None
        return self._control

    def _files(self) -> list[dict[str, str]]:
        files = [
            {
                "source": str(
                    self._write("hostname", (self.spec.hostname or self.spec.name) + "\n")
                ),
                "target": "/etc/hostname",
            }
        ]
        hosts = (
            self.network.hosts_file
            if self.network
            else self._write("hosts", "127.0.0.1\tlocalhost\n")
        )
        files.append({"source": str(hosts), "target": "/etc/hosts"})
        return files

    def _write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def _handshake(self, events: IO[bytes], deadline: float) -> None:
        started = False
        lines = LineReader(events)
        while not (started and self.pid1):
            try:
                line = lines.next(deadline).decode()
            except TimeoutError:
                raise ContainerError(f"container {self.spec.name} did not start in time") from None
            except EOFError:
                raise ContainerError(
                    f"container {self.spec.name} init exited during setup"
                ) from None
            word, _, rest = line.partition(" ")
            if word == "unshared":
                net = self.network.attach(self.spec.name, int(rest)) if self.network else {}
                self.address = net.get("address")
                os.write(self._control_fd, f"go {init.encode(net)}\n".encode())
            elif word == "forked":
                self.pid1 = int(rest)
            elif word == "started":
                started = True
            elif word == "error":
                code, _, message = rest.partition(" ")
                raise ContainerError(message, int(code))

    def wait(self, timeout: float | None = None) -> int:
        """The container's exit status (raises subprocess.TimeoutExpired)."""
        assert self.shim is not None
        self.exit_code = self.shim.wait(timeout)
        return self.exit_code

    def shim_status(self) -> int | None:
        """The exit status if the container has ended, else None (never blocks)."""
        return self.shim.poll() if self.shim is not None else None

    def running(self) -> bool:
        return self.shim is not None and self.shim.poll() is None

    def signal(self, signum: int) -> None:
        if self.pid1 is not None and self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signum)

    def stop(self, grace: float = 2.0) -> int | None:
        """TERM to the workload (through pid 1), then KILL after ``grace`` seconds."""
        if self.shim is None:
            return None
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                return self.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        if self._control is not None:  # EOF on the control pipe ends pid 1 too
            os.close(self._control)
            self._control = None
        try:
            return self.wait(5)
        except subprocess.TimeoutExpired:
            self.shim.kill()
            return self.wait(5)

    def cpu_ns(self) -> int:
        assert self.cgroup is not None
        return self.cgroup.cpu_ns()

    def cpu_stats(self) -> CpuStats:
        """CPU time and, under a ``cpus`` quota, how often it was throttled."""
        assert self.cgroup is not None
        return limits.cpu_stats(self.cgroup)

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer ended a process of this container."""
        if self.cgroup is not None:
            self._oom_killed = self._oom_killed or limits.oom_killed(self.cgroup)
        return self._oom_killed

    def logs(self) -> str:
        """What the container wrote on stderr (and stdout when not piped)."""
        parts = [
            p.read_text(errors="replace")
            for p in (self.log_dir / "stdout.log", self.log_dir / "stderr.log")
            if p.exists()
        ]
        return "".join(parts)

    def remove(self, grace: float = 2.0) -> None:
        """Stop and release everything; idempotent, safe after any failure."""
        try:
            self.stop(grace)
        finally:
            crashpoint.reached("container-remove")
            if self._control is not None:
                os.close(self._control)
                self._control = None
            for stream in (self.stdin, self.stdout, self.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            if self.pty_master is not None:
                os.close(self.pty_master)
                self.pty_master = None
            if self.network is not None:
                self.network.detach(self.spec.name)
            if self.cgroup is not None:
                with contextlib.suppress(OSError):
                    self.oom_killed()  # remembered: the cgroup is going
                self.cgroup.remove()
                self.cgroup = None
            self.runtime.forget(self)
