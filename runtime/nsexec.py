"""``exec`` into a running container: the helper that joins its namespaces.

Runs as a freshly exec'd, single-threaded ``python -S`` (``init exec``):
``setns`` into a mount namespace fails in a multi-threaded process, and a
pid namespace is entered only by the children of the caller. It joins the
container's cgroups, then its IPC, UTS, network, pid and mount namespaces
(from ``/proc/<pid 1>/ns``; the mount namespace last, as nsenter(1) does),
and forks: the child becomes the command exactly as pid 1 makes a workload
(session, tty, capabilities, no_new_privs, user) and execs it. The helper
stays outside, forwards signals and exits with the child's status.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys

from runtime import syscalls as sc

TYPE_CHECKING = False  # not typing's: the init does not import typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

NAMESPACES = (
    ("ipc", sc.CLONE_NEWIPC),
    ("uts", sc.CLONE_NEWUTS),
    ("net", sc.CLONE_NEWNET),
    ("pid", sc.CLONE_NEWPID),
    ("mnt", sc.CLONE_NEWNS),
)
EXIT_RUNTIME, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND = 125, 126, 127


def join(pid1: int, cgroup_procs: list[str]) -> None:
    """Join the cgroups and every namespace of the container whose pid 1 is ``pid1``."""
    fds = [(os.open(f"/proc/{pid1}/ns/{name}", os.O_RDONLY), flag) for name, flag in NAMESPACES]
    for procs in cgroup_procs:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    for fd, flag in fds:
        sc.setns(fd, flag)
        os.close(fd)


def run(pid1: int, spec: dict[str, Any]) -> int:
    from runtime.init import enter_workload, execvpe

    try:
        join(pid1, spec["cgroup_procs"])
    except OSError as exc:
        print(f"ipcbench: cannot enter the container: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    pid = os.fork()
    if pid == 0:
        try:
            enter_workload(spec)
            os.chdir(spec["cwd"])
            execvpe(spec["command"], spec["env"])
        except OSError as exc:
            print(f"ipcbench: {spec['command'][0]}: {exc.strerror}", file=sys.stderr)
            os._exit(EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return EXIT_RUNTIME
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main(pid1: str, spec_json: str) -> int:
    return run(int(pid1), json.loads(spec_json))
