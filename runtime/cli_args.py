"""Docker's flag syntax, parsed: -e, -v, -p, --memory, --user, and ``[IMAGE] [-- CMD]``."""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
from typing import Any

from runtime import images
from runtime.images import ImageError


class UsageError(Exception):
    """Bad input: one line (exit 125 for run and exec, 1 otherwise)."""


SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(text: str) -> int:
    match = SIZE.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise UsageError(f"invalid size {text!r}: use e.g. 512k, 64m, 1g")
    return int(float(match[1]) * UNITS[match[2].lower()])


def env(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable {pair!r}: use K=V")
        # Docker's `-e K` passes the caller's value through.
        found[key] = value if eq else os.environ.get(key, "")
    return found


def volume(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UsageError(f"invalid volume {text!r}: use HOSTDIR:CTRDIR[:ro]")
    source, target = parts[0], parts[1]
    if not (os.path.isabs(source) and os.path.isabs(target)):
        raise UsageError(f"invalid volume {text!r}: both paths must be absolute")
    if not os.path.exists(source):
        raise UsageError(f"invalid volume {text!r}: {source} does not exist")
    return {"source": source, "target": target, "readonly": parts[2:] == ["ro"]}


def port(text: str) -> tuple[int, int]:
    parts = text.split(":")
    if len(parts) == 3:
        if parts[0] not in ("127.0.0.1", "localhost"):
            raise UsageError(f"invalid port {text!r}: only 127.0.0.1 can be published")
        parts = parts[1:]
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
        raise UsageError(f"invalid port {text!r}: use HOSTPORT:CTRPORT")
    return int(parts[0]), int(parts[1])


def user(text: str | None) -> list[int] | None:
    if not text:
        return None
    name, _, group = text.partition(":")
    try:
        entry = None if name.isdigit() else pwd.getpwnam(name)
        uid = int(name) if entry is None else entry.pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = entry.pw_gid if entry else _primary_gid(uid)
    except KeyError:
        raise UsageError(f"unknown user or group in {text!r}") from None
    return [uid, gid]


def _primary_gid(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def image_and_command(rest: list[str], rootfs: str | None) -> tuple[str | None, dict[str, Any]]:
    """``[IMAGE] [-- CMD...]`` → (image name, {"rootfs", "command"})."""
    name: str | None = None
    if rest and rest[0] != "--":
        name, rest = rest[0], rest[1:]
    command = rest[1:] if rest[:1] == ["--"] else rest
    if name and rootfs:
        raise UsageError("give an IMAGE or --rootfs, not both")
    if rootfs and not os.path.isdir(rootfs):
        raise UsageError(f"--rootfs {rootfs}: not a directory")
    default: tuple[str, ...] = ("/bin/sh",) if rootfs else ()
    if name:
        try:
            image = images.get(name)
        except ImageError as exc:
            raise UsageError(str(exc)) from None
        rootfs, default = image.rootfs, image.command
    if not command and not default:
        raise UsageError("no command: name an IMAGE, or give one after --")
    return name, {"rootfs": rootfs, "command": list(command or default)}


def run_config(args: Any) -> dict[str, Any]:
    """The record config of ``container run`` from its parsed flags."""
    if args.detach and args.tty:
        raise UsageError("-t with -d is not supported: use `container exec -it` on it instead")
    image, what = image_and_command(args.rest, args.rootfs)
    limits = {
        "cpus": args.cpus,
        "cpuset_cpus": args.cpuset_cpus,
        "memory": size(args.memory) if args.memory else None,
        "pids_limit": args.pids_limit,
    }
    if args.cpus is not None and args.cpus <= 0:
        raise UsageError("--cpus must be positive")
    return {
        "image": image or (f"rootfs:{args.rootfs}" if args.rootfs else "host"),
        **what,
        "env": env(args.env),
        "hostname": args.hostname,
        "user": user(args.user),
        "cwd": args.workdir or "/",
        "volumes": [volume(v) for v in args.volume],
        "network": args.network,
        "ports": [port(p) for p in args.publish],
        "limits": {k: v for k, v in limits.items() if v is not None},
        "tty": args.tty,
        "interactive": args.interactive,
        "detached": args.detach,
        "rm": args.rm,
    }


def new_name() -> str:
    return f"ctr-{secrets.token_hex(3)}"
