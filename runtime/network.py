"""The lab network: a bridge in a network namespace of its own.

The host's network namespace is left untouched: the bridge and the host ends
of the veth pairs live in the *lab* namespace, held open by a small holder
process (``runtime.init holder``) that exits when its stdin reaches EOF, so
the whole lab disappears with the harness even after a SIGKILL. Each
container gets one veth whose far end is created directly inside the
container's namespace as ``eth0``, and an address from the run's private /24.
Names resolve through a hosts file that every container mounts read-only and
that is rewritten in place as containers join.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Self

from runtime import crashpoint, init_command, syscalls

log = logging.getLogger(__name__)

MTU = 1500  # explicit and recorded: a veth's MTU changes what a large message costs


class NetworkError(Exception):
    """The lab network could not be set up or changed."""


def pick_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A private /24 for this run. It only exists inside the lab namespace."""
    rng = rng or random.Random()
    return ipaddress.IPv4Network(f"10.{rng.randrange(200, 250)}.{rng.randrange(256)}.0/24")


def _netlink_in(netns_path: str) -> Any:
    """An rtnetlink socket that lives in the given network namespace.

    A netlink socket belongs to the namespace it was created in, so we enter
    the lab namespace on this thread only, create the socket and come back
    (what ``ip -n`` does). pyroute2's own ``IPRoute(netns=...)`` forks a helper
    instead, and a forked copy of the harness must never run harness code.
    """
    from pyroute2 import IPRoute

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    lab = os.open(netns_path, os.O_RDONLY)
    try:
        syscalls.setns(lab, syscalls.CLONE_NEWNET)
        try:
            return IPRoute()
        finally:
            syscalls.setns(home, syscalls.CLONE_NEWNET)
    finally:
        os.close(home)
        os.close(lab)


class LabNetwork:
    """A bridge, its addresses and names; a context manager that removes it all."""

    def __init__(
        self, *, run_id: str, state_dir: Path, subnet: ipaddress.IPv4Network | None = None
    ):
        self.run_id = run_id
        self.subnet = subnet or pick_subnet()
        self.hosts_file = state_dir / "hosts"
        self._holder: subprocess.Popen[bytes] | None = None
        self._ipr: Any = None
        # .1 is the bridge's own: the lab namespace's foothold, used by port proxies only.
        self.bridge_address = str(next(self.subnet.hosts()))
        self._free = [str(a) for a in list(self.subnet.hosts())[1:]]
        self._members: dict[str, tuple[str, str]] = {}  # name -> (address, host-side ifname)
        self._counter = 0
        self.hosts_file.write_text(self._hosts_text())

    @property
    def holder_pid(self) -> int:
        assert self._holder is not None
        return self._holder.pid

    def __enter__(self) -> Self:
        if self._holder is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        cmd = init_command("holder", f"ipcbench-{self.run_id}-lab")
        self._holder = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline() != b"ready\n":
            self.close()
            raise NetworkError("the lab network namespace could not be created")
        try:
            self._ipr = _netlink_in(f"/proc/{self._holder.pid}/ns/net")
            self._ipr.link("add", ifname="br0", kind="bridge")
            self._bridge = self._ipr.link_lookup(ifname="br0")[0]
            self._ipr.link("set", index=self._bridge, state="up", mtu=MTU)
            self._ipr.addr(
                "add",
                index=self._bridge,
                address=self.bridge_address,
                prefixlen=self.subnet.prefixlen,
            )
            lo = self._ipr.link_lookup(ifname="lo")[0]
            self._ipr.link("set", index=lo, state="up")
            crashpoint.reached("lab-open")
        except Exception as exc:
            self.close()
            raise NetworkError(f"cannot create the lab bridge: {exc}") from exc

    def attach(self, name: str, pid: int) -> dict[str, Any]:
        """Give the container whose network namespace holds ``pid`` an ``eth0`` on the lab."""
        if name in self._members:
            raise NetworkError(f"a container named {name!r} is already on the lab network")
        if not self._free:
            raise NetworkError(f"no free address left in {self.subnet}")
        self._counter += 1
        host_if = f"vb{self._counter}"
        address = self._free.pop(0)
        try:
            self._ipr.link(
                "add",
                ifname=host_if,
                kind="veth",
                mtu=MTU,
                peer={"ifname": "eth0", "net_ns_pid": pid, "mtu": MTU},
            )
            index = self._ipr.link_lookup(ifname=host_if)[0]
            self._ipr.link("set", index=index, master=self._bridge, state="up")
            crashpoint.reached("lab-attach")
        except Exception as exc:
            self._free.insert(0, address)
            raise NetworkError(f"cannot attach {name} to the lab network: {exc}") from exc
        self._members[name] = (address, host_if)
        self._rewrite_hosts()
        return {"interface": "eth0", "address": address, "prefixlen": self.subnet.prefixlen}

    def detach(self, name: str) -> None:
        """Remove a container's veth and free its address; idempotent."""
        member = self._members.pop(name, None)
        if member is None:
            return
        address, host_if = member
        try:
            index = self._ipr.link_lookup(ifname=host_if)
            if index:
                self._ipr.link("del", index=index[0])
        except Exception as exc:  # the pair is gone already when the container's netns died
            log.debug("detach %s: %s", name, exc)
        self._free.append(address)
        self._rewrite_hosts()

    def address_of(self, name: str) -> str:
        return self._members[name][0]

    def _hosts_text(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{addr}\t{name}" for name, (addr, _) in sorted(self._members.items())]
        return "\n".join(lines) + "\n"

    def _rewrite_hosts(self) -> None:
        # In place, not by rename: containers bind-mount this very inode.
        with open(self.hosts_file, "r+") as f:
            f.truncate(0)
            f.write(self._hosts_text())

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "bridge in its own network namespace",
            "subnet": str(self.subnet),
            "mtu": MTU,
        }

    def close(self) -> None:
        """Tear the lab down; idempotent. The namespace (and every veth) dies with the holder."""
        if self._ipr is not None:
            with contextlib.suppress(Exception):
                self._ipr.close()
            self._ipr = None
        if self._holder is not None:
            holder, self._holder = self._holder, None
            for stream in (holder.stdin, holder.stdout):
                if stream is not None:
                    stream.close()
            try:
                holder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.wait()
        self._members.clear()
