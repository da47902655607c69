"""The container's first processes: a shim on the host side and pid 1 inside.

The harness never calls ``unshare`` itself (it acts on the calling thread and
the harness may have threads). Instead every container starts as a freshly
exec'd, single-threaded ``python -S`` running :func:`main` (runc's
``runc init``, furnace's ``pid1.py``):

shim
    reads the JSON spec from the *control* pipe, joins the container's
    cgroups, unshares the mount, UTS, IPC, network and pid namespaces, reports
    ``unshared`` and waits for ``go`` (the harness wires the network in
    between), forks pid 1, reports its host pid, and waits for it so that the
    harness sees the container's exit status as the shim's.
pid 1
    builds the root filesystem, sets the hostname, configures the network,
    forks and execs the workload, reports ``started`` (or the exec error),
    then reaps children, forwards signals to the workload and ends the
    container when the workload ends or the control pipe reaches EOF: if the
    harness dies, the kernel closes its end of the pipe and the container
    follows it.

Never a time namespace: containers share the host's monotonic clock.
Events go back to the harness as lines on the *event* pipe.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum (~4 ms of start-up)
import errno
import fcntl
import marshal
import os
import select
import sys
import termios

from runtime import caps, netconfig, rootfs
from runtime import syscalls as sc

TYPE_CHECKING = False  # not typing's: the init does not import typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

# Docker's conventions for failures of the runtime itself.
EXIT_RUNTIME, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND = 125, 126, 127


def _emit(fd: int, *words: object) -> None:
    os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())


def encode(data: Any) -> str:
    """The spec on the control pipe: marshal, as hex on one line.

    Not JSON: importing json (and re with it) would cost the init ~5 ms of
    start-up; harness and init run the same interpreter, so marshal's
    version-specific format is safe.
    """
    return marshal.dumps(data).hex()


def decode(line: str) -> Any:
    return marshal.loads(bytes.fromhex(line))


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError("control pipe closed")
        data += chunk
    return data.decode().rstrip("\n")


def shim(control: int, events: int) -> int:
    spec = decode(_read_line(control))
    _oom_score_adj(-1000)  # inherited by pid 1; the workload sets its own back to 0
    for procs in spec["cgroup_procs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    sc.unshare(NAMESPACES | sc.CLONE_NEWNET)
    _emit(events, "unshared", os.getpid())
    # The harness wires the network into our namespace, then sends its settings.
    word, _, net = _read_line(control).partition(" ")
    if word != "go":
        return EXIT_RUNTIME
    spec["network"] = decode(net)
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(pid1(spec, control, events))
        except BaseException as exc:  # pid 1 must never unwind into the shim's code
            _emit(events, "error", EXIT_RUNTIME, f"container init: {exc}")
            os._exit(EXIT_RUNTIME)
    _emit(events, "forked", pid)
    os.close(control)
    os.close(events)
    # The shim keeps no stdio: only pid 1 and the workload hold the container's pipes.
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def pid1(spec: dict[str, Any], control: int, events: int) -> int:
    rootfs.build(
        spec["root"],
        volumes=spec["volumes"],
        files=spec["files"],
        image=spec.get("image"),
        console=spec.get("console"),
    )
    sc.sethostname(spec["hostname"])
    net = spec["network"]
    netconfig.configure(net.get("interface"), net.get("address"), net.get("prefixlen", 24))
    # Handlers first: a signal or the workload's exit may come before start() returns.
    wake_r = _install_handlers()
    workload = _start_workload(spec, events)
    if workload < 0:
        return -workload
    _forward_to[0] = workload
    for signum in _pending:
        _forward(workload, signum)
    _emit(events, "started", workload)
    os.close(events)
    return _supervise(workload, control, wake_r)


def _start_workload(spec: dict[str, Any], events: int) -> int:
    """Fork and exec the command; return its pid, or minus the exit status on failure."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        try:
            enter_workload(spec)
            os.chdir(spec["cwd"])
            # The workload gets stdio only, never the control or event pipes.
            os.closerange(3, err_w)
            os.closerange(err_w + 1, 65536)
            execvpe(spec["command"], spec["env"])
        except OSError as exc:
            os.write(err_w, f"{exc.errno} {exc.strerror}".encode())
        except BaseException as exc:  # never unwind into pid 1's code in this child
            os.write(err_w, f"0 {type(exc).__name__}: {exc}".encode())
        os._exit(EXIT_RUNTIME)
    os.close(err_w)
    failure = os.read(err_r, 4096).decode()
    os.close(err_r)
    if not failure:
        return pid
    os.waitpid(pid, 0)
    number, _, text = failure.partition(" ")
    code = EXIT_NOT_FOUND if int(number) == errno.ENOENT else EXIT_NOT_EXECUTABLE
    if int(number) not in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.EISDIR):
        code = EXIT_RUNTIME
    _emit(events, "error", code, f"{spec['command'][0]}: {text}")
    return -code


def execvpe(command: list[str], env: dict[str, str]) -> None:
    """``os.execvpe`` without its lazy ``import warnings``: after pivot_root into an
    image, the interpreter's standard library is not there to import from."""
    name = command[0]
    if "/" in name:
        os.execve(name, command, env)
    first_error: OSError | None = None
    for directory in env.get("PATH", "/usr/bin:/bin").split(":"):
        try:
            os.execve(os.path.join(directory or ".", name), command, env)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:  # e.g. EACCES: remembered, the search goes on (as execvp does)
            first_error = first_error or exc
    raise first_error or FileNotFoundError(2, "No such file or directory", name)


def enter_workload(spec: dict[str, Any]) -> None:
    """Turn this child of pid 1 into the workload: session, OOM score, caps, user."""
    os.setsid()
    if spec.get("tty"):
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # The shim and pid 1 are shielded from the OOM killer (-1000); the workload
    # is not. Written while CAP_SYS_RESOURCE is still held, so it cannot go back.
    _oom_score_adj(0)
    caps.restrict()
    if spec.get("user"):
        uid, gid = spec["user"]
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # the kernel clears the effective and permitted sets


def _oom_score_adj(value: int) -> None:
    # Lowering needs CAP_SYS_RESOURCE, which some sandboxes withhold even from root.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        pass


_forward_to = [0]  # the workload's pid, once forked
_pending: list[int] = []  # signals that came before it


def _on_signal(signum: int, _frame: object) -> None:
    if _forward_to[0]:
        _forward(_forward_to[0], signum)
    else:
        _pending.append(signum)


def _install_handlers() -> int:
    """Wake the supervisor on SIGCHLD and forwarded signals; returns the wake-up fd."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for signum in FORWARDED:
        signal.signal(signum, _on_signal)
    return wake_r


def _supervise(workload: int, control: int, wake_r: int) -> int:
    """Reap, forward signals, and end the container with the workload."""
    status = _reap(workload)  # it may have ended already
    while status is None:
        ready, _, _ = select.select([control, wake_r], [], [])
        if control in ready and not os.read(control, 64):
            status = 128 + signal.SIGKILL  # the harness is gone: so is the container
            break
        if wake_r in ready:
            os.read(wake_r, 64)
        status = _reap(workload)
    # pid 1 leaving kills every other process of the pid namespace; do it
    # explicitly so that their exit does not depend on that detail.
    try:  # noqa: SIM105 (contextlib: start-up time)
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    return status


def _forward(workload: int, signum: int) -> None:
    try:  # noqa: SIM105 (contextlib: start-up time)
        os.kill(workload, signum)
    except ProcessLookupError:
        pass


def _reap(workload: int) -> int | None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if pid == workload:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.waitstatus_to_exitcode(status)


def holder() -> int:
    """Hold a fresh network namespace (the lab's) until stdin reaches EOF."""
    sc.unshare(sc.CLONE_NEWNET)
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.buffer.read()
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the harness is gone: so is the lab
    return 0


def main() -> None:
    role = sys.argv[1]
    if role == "holder":
        sys.exit(holder())
    if role == "exec":
        from runtime import nsexec

        sys.exit(nsexec.main(sys.argv[2], sys.argv[3]))
    control, events = int(sys.argv[2]), int(sys.argv[3])
    try:
        code = shim(control, events)
    except Exception as exc:
        try:  # noqa: SIM105 (contextlib: start-up time)
            _emit(events, "error", EXIT_RUNTIME, f"container setup: {exc}")
        except OSError:
            pass
        code = EXIT_RUNTIME
    sys.exit(code)
