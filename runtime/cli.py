"""``ipcbench container ...`` and ``ipcbench image ...``: Docker's verbs on the built-in runtime.

The host CLI (``bench/cli.py``) registers these with :func:`add_commands` and
hands them to :func:`dispatch`. Conventions follow Docker's: ``run`` exits
with the container's status, and the runtime's own failures exit 125 (could
not create or start), 126 (the command cannot be run) or 127 (not found),
with one line on stderr; the other verbs exit 1 on an error. Containers are
known by name across invocations through their records
(``runtime/records.py``); a ``-d`` container is owned by a monitor process
(``runtime/monitor.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from runtime import cli_commands as cmds

EXIT_RUNTIME = 125


def add_commands(sub: Any) -> None:
    """Add ``container`` and ``image`` to an argparse subparsers object."""
    ctr = sub.add_parser("container", help="run and manage containers (Docker's verbs)")
    verbs = ctr.add_subparsers(dest="verb", required=True)
    _add_run(verbs.add_parser("run", help="run a command in a new container"))
    ps = verbs.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="exited ones too")
    stop = verbs.add_parser("stop", help="stop a running container (TERM, then KILL)")
    stop.add_argument("-t", "--time", type=float, default=10.0, help="grace seconds (10)")
    stop.add_argument("names", nargs="+", metavar="NAME")
    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="stop it first if running")
    rm.add_argument("names", nargs="+", metavar="NAME")
    logs = verbs.add_parser("logs", help="what a container wrote")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("name", metavar="NAME")
    exe = verbs.add_parser("exec", help="run a command in a running container")
    exe.add_argument("-i", "--interactive", action="store_true")
    exe.add_argument("-t", "--tty", action="store_true")
    exe.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    exe.add_argument("-u", "--user", metavar="UID[:GID]")
    exe.add_argument("-w", "--workdir", metavar="DIR")
    exe.add_argument("name", metavar="NAME")
    exe.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    bench = verbs.add_parser("bench-start", help="time container start and stop (p50, p95)")
    bench.add_argument("-n", type=int, default=60, help="starts to time (60)")
    bench.add_argument("--docker", action="store_true", help="compare with `docker run`")
    proxy = verbs.add_parser("bench-proxy", help="time round trips through a published port")
    proxy.add_argument("-n", type=int, default=2000, help="round trips (2000)")
    img = sub.add_parser("image", help="import and list images")
    iverbs = img.add_subparsers(dest="verb", required=True)
    imp = iverbs.add_parser("import", help="an unpacked root filesystem from a tarball")
    imp.add_argument("tarball", metavar="TARBALL")
    imp.add_argument("image", metavar="NAME")
    iverbs.add_parser("ls", help="list images")
    irm = iverbs.add_parser("rm", help="remove an image")
    irm.add_argument("image", metavar="NAME")


def _add_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("--rm", action="store_true", help="remove it when it exits")
    run.add_argument("-d", "--detach", action="store_true", help="run in the background")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    run.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    run.add_argument("--name", help="the container's name (default: a generated one)")
    run.add_argument("--hostname", help="the container's hostname (default: its name)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    run.add_argument("-v", "--volume", action="append", default=[],
                     metavar="HOSTDIR:CTRDIR[:ro]")  # fmt: skip
    run.add_argument("-w", "--workdir", metavar="DIR")
    run.add_argument("--network", choices=("lab", "none"), default="lab")
    run.add_argument("-p", "--publish", action="append", default=[],
                     metavar="[127.0.0.1:]HOSTPORT:CTRPORT")  # fmt: skip
    run.add_argument("--cpus", type=float, help="CPU quota, in CPUs")
    run.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs it may run on, e.g. 0-1")
    run.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 64m")
    run.add_argument("--pids-limit", type=int, metavar="N")
    run.add_argument("-u", "--user", metavar="UID[:GID]")
    run.add_argument("--rootfs", metavar="DIR", help="an unpacked root filesystem as /")
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="[IMAGE] [-- CMD [ARG...]]")


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed ``container`` or ``image`` command; returns the exit status."""
    handlers = {
        ("container", "run"): cmds.run,
        ("container", "ps"): cmds.ps,
        ("container", "stop"): cmds.stop,
        ("container", "rm"): cmds.rm,
        ("container", "logs"): cmds.logs,
        ("container", "exec"): cmds.exec_,
        ("container", "bench-start"): cmds.bench_start,
        ("container", "bench-proxy"): cmds.bench_proxy,
        ("image", "import"): cmds.image_import,
        ("image", "ls"): cmds.image_ls,
        ("image", "rm"): cmds.image_rm,
    }
    try:
        if os.geteuid() != 0:
            raise cmds.UsageError("needs root (namespaces, cgroups): try sudo")
        return handlers[(args.command, args.verb)](args)
    except cmds.UsageError as exc:
        code = EXIT_RUNTIME if args.verb in ("run", "exec") else 1
        print(f"ipcbench: {exc}", file=sys.stderr)
        return code
    except cmds.KNOWN_ERRORS as exc:
        code = getattr(exc, "exit_code", EXIT_RUNTIME if args.verb in ("run", "exec") else 1)
        print(f"ipcbench: {exc}", file=sys.stderr)
        return int(code)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m runtime.cli container ps``)."""
    parser = argparse.ArgumentParser(prog="ipcbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
