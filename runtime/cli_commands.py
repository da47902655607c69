"""What each ``container``/``image`` verb does (parsed by ``runtime/cli.py``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runtime import PROJECT_ROOT, cgroups, cli_args, images, init_command
from runtime.attach import relay_pipes, relay_pty
from runtime.cgroups import Cgroup, CgroupError
from runtime.container import ContainerError
from runtime.images import ImageError
from runtime.lines import LineReader
from runtime.network import NetworkError
from runtime.proxy import ProxyError
from runtime.records import Record, RecordError
from runtime.session import Session
from runtime.spec import DEFAULT_ENV

UsageError = cli_args.UsageError
KNOWN_ERRORS = (ContainerError, RecordError, ImageError, CgroupError, NetworkError, ProxyError)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


# -- run ------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    config = cli_args.run_config(args)
    record = Record.create(args.name or cli_args.new_name(), config)
    if args.detach:
        return _run_detached(record)
    return _run_foreground(record, config)


def _run_detached(record: Record) -> int:
    with open(record.dir / "monitor.log", "ab") as log:
        monitor = subprocess.Popen(
            [sys.executable, "-m", "runtime.monitor", record.name], cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    assert monitor.stdout is not None
    try:
        line = LineReader(monitor.stdout).next(time.monotonic() + 30).decode()
    except (TimeoutError, EOFError):
        monitor.kill()
        monitor.wait()
        record.remove()
        raise ContainerError(f"the monitor of {record.name} did not start it") from None
    finally:
        monitor.stdout.close()
    word, _, rest = line.partition(" ")
    if word != "started":
        code, _, message = rest.partition(" ")
        raise ContainerError(message, int(code))
    print(record.name)
    return 0


def _run_foreground(record: Record, config: dict[str, Any]) -> int:
    session = Session(record, attach=True)
    try:
        c = session.start()
    except BaseException:
        session.close()
        record.remove()
        raise
    previous = {s: signal.signal(s, lambda n, _f: c.signal(n)) for s in FORWARDED}
    try:
        if c.pty_master is not None:
            with open(record.dir / "stdout.log", "ab") as log:
                relay_pty(c.pty_master, interactive=config["interactive"], log=log)
        else:
            streams = {s: fd for s, fd in ((c.stdout, 1), (c.stderr, 2)) if s is not None}
            relay_pipes(streams, c.stdin, record.dir)
        status = c.wait()
        session.finish(status)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        session.close()
    if record.status().get("oom_killed"):
        print(f"ipcbench: {record.name} was killed: out of memory", file=sys.stderr)
    if config["rm"]:
        record.remove()
    return status


# -- ps, stop, rm, logs ---------------------------------------------------------
def _ago(seconds: float) -> str:
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def _status_text(record: Record) -> str:
    state, status = record.state(), record.status()
    now = time.time()
    if state == "running":
        return f"Up {_ago(now - status.get('started', now))}"
    if state == "exited":
        oom = " (OOM)" if status.get("oom_killed") else ""
        return f"Exited ({status.get('exit_code')}){oom} {_ago(now - status['finished'])} ago"
    return state.capitalize()


def ps(args: argparse.Namespace) -> int:
    rows = [("NAME", "STATUS", "PID", "IMAGE", "PORTS", "COMMAND")]
    for record in Record.all():
        state, cfg = record.state(), record.config()
        if state != "running" and not args.all:
            continue
        ports = ",".join(f"127.0.0.1:{h}->{c}/tcp" for h, c in cfg.get("ports", []))
        pid = str(cfg.get("pid1", "")) if state == "running" else ""
        command = " ".join(cfg.get("command", []))
        rows.append((record.name, _status_text(record), pid, cfg.get("image", ""), ports,
                     command[:40]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[5])
    return 0


def _wait_exited(record: Record, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while record.state() in ("running", "created"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _stop(record: Record, grace: float) -> None:
    pid1 = record.config().get("pid1")
    if record.state() != "running" or pid1 is None:
        return
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid1, signum)
        if _wait_exited(record, wait):
            return
    raise RecordError(f"{record.name} did not stop")


def stop(args: argparse.Namespace) -> int:
    for name in args.names:
        _stop(Record.get(name), args.time)
        print(name)
    return 0


def rm(args: argparse.Namespace) -> int:
    for name in args.names:
        record = Record.get(name)
        if record.state() in ("running", "created"):
            if not args.force:
                raise RecordError(f"{name} is running: stop it first, or rm -f")
            _stop(record, 0.0)
        if record.state() == "dead":
            from runtime import gc
            from runtime.local import STATE_ROOT

            gc.sweep(STATE_ROOT, cgroups.detect())
        record.remove()
        print(name)
    return 0


def logs(args: argparse.Namespace) -> int:
    record = Record.get(args.name)
    paths = [
        (record.dir / "stdout.log", sys.stdout.buffer),
        (record.dir / "stderr.log", sys.stderr.buffer),
    ]
    offsets = [0, 0]
    while True:
        for i, (path, out) in enumerate(paths):
            try:
                with open(path, "rb") as f:
                    f.seek(offsets[i])
                    data = f.read()
            except FileNotFoundError:
                continue
            offsets[i] += len(data)
            out.write(data)
            out.flush()
        if not args.follow or record.state() not in ("running", "created"):
            return 0
        time.sleep(0.05)


# -- exec -------------------------------------------------------------------------
def exec_(args: argparse.Namespace) -> int:
    record = Record.get(args.name)
    cfg = record.config()
    if record.state() != "running":
        raise RecordError(f"{args.name} is not running")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("no command: give one after --")
    cgroup = Cgroup.existing(cgroups.detect(), cfg["run_id"], args.name)
    spec = {
        "command": command,
        "env": {**DEFAULT_ENV, **cfg.get("env", {}), **cli_args.env(args.env)},
        "cwd": args.workdir or cfg.get("cwd") or "/",
        "user": cli_args.user(args.user) or cfg.get("user"),
        "tty": args.tty,
        "cgroup_procs": [f for f in cgroup.procs_files if Path(f).exists()],
    }
    helper = init_command("exec", str(cfg["pid1"]), json.dumps(spec), f"ipcbench-{cfg['run_id']}")
    if args.tty:
        master, slave = os.openpty()
        proc = subprocess.Popen(helper, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True)  # fmt: skip
        os.close(slave)
        try:
            relay_pty(master, interactive=args.interactive, log=None)
        finally:
            os.close(master)
        return proc.wait()
    proc = subprocess.Popen(helper, stdin=None if args.interactive else subprocess.DEVNULL)
    previous = {s: signal.signal(s, lambda n, _f: proc.send_signal(n)) for s in FORWARDED}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- images and benchmarks ----------------------------------------------------------
def image_import(args: argparse.Namespace) -> int:
    image = images.import_tarball(Path(args.tarball), args.image)
    print(f"{image.name} ({image.size / 1e6:.1f} MB)")
    return 0


def image_ls(args: argparse.Namespace) -> int:
    print(f"{'NAME':<20} {'SIZE':>10}  ROOT")
    for image in images.all_images():
        where = image.rootfs or "the host's directories (built in)"
        print(f"{image.name:<20} {image.size / 1e6:>8.1f}MB  {where}")
    return 0


def image_rm(args: argparse.Namespace) -> int:
    images.remove(args.image)
    print(args.image)
    return 0


def bench_start(args: argparse.Namespace) -> int:
    from runtime import benchmarks

    benchmarks.print_start(benchmarks.start_stop(args.n, docker=args.docker))
    return 0


def bench_proxy(args: argparse.Namespace) -> int:
    from runtime import benchmarks

    benchmarks.print_proxy(benchmarks.proxy_latency(args.n))
    return 0
