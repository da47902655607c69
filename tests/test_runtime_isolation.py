"""A container is isolated as Docker's are: capabilities, no_new_privs, masks, files, network.

Every claim is probed from inside a real container by a script that tries
the forbidden thing and reports what the kernel answered.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.caps import DEFAULT_MASK
from runtime.container import ContainerSpec, Volume
from runtime.local import LocalRuntime
from runtime.rootfs import MASKED

pytestmark = pytest.mark.needs_root
# Debian's interpreter: any user may run it (a checkout's may sit under a private /root).
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

PROBE = r"""
MASKED = __MASKED__
import ctypes, errno, json, os, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
def err(result):
    return 0 if result == 0 else errno.errorcode[ctypes.get_errno()]
def writable(path):
    try:
        with open(path, "w") as f:
            f.write("1")
        return True
    except OSError as e:
        return errno.errorcode[e.errno]
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
finit = {"x86_64": 313, "aarch64": 273}[platform.machine()]
devnull = os.open("/dev/null", os.O_RDONLY)
routes = [line.split()[1] for line in open("/proc/net/route").read().splitlines()[1:]]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    udp.connect(("192.0.2.1", 9))  # TEST-NET-1: a route lookup only, nothing is sent
    outside = "reachable"
except OSError as e:
    outside = errno.errorcode[e.errno]
print(json.dumps({
    "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "nnp": status["NoNewPrivs"].strip(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "mount": err(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    "module": err(libc.syscall(finit, devnull, b"", 0)),
    "sethostname": err(libc.sethostname(b"x", 1)),
    "unshare": err(libc.unshare(0x00020000)),
    "masked": {p: os.listdir(p) if os.path.isdir(p) else open(p).read()
               for p in MASKED if os.path.exists(p)},
    "writes": {p: writable(p) for p in (
        "/probe", "/etc/probe", "/usr/probe", "/var/probe", "/root/probe",
        "/proc/sys/kernel/hostname", "/sys/kernel/probe",
        "/tmp/probe", "/shared/probe")},
    "routes": routes, "outside": outside,
}))
""".replace("__MASKED__", repr(MASKED))


def probe(
    rt: LocalRuntime, name: str, *, net: Any = None, user: Any = None, volume: Any = None
) -> Any:
    volumes = (Volume(str(volume), "/shared"),) if volume else ()
    spec = ContainerSpec(
        name=name,
        command=(PYTHON, "-c", PROBE),
        stdout_pipe=True,
        volumes=volumes,
        user=user,
    )
    with rt.container(spec, net) as c:
        c.start()
        assert c.stdout is not None
        out = c.stdout.read().decode()
        assert c.wait(30) == 0, out + c.logs()
    return json.loads(out)


@pytest.fixture(scope="module")
def seen() -> dict:
    with LocalRuntime() as rt, rt.network() as net:
        vol = rt.volume("shared")
        return probe(rt, "isolated", net=net, volume=vol)


def test_capabilities_are_dockers_default_set(seen: dict) -> None:
    caps = {k: int(v, 16) for k, v in seen["caps"].items()}
    assert DEFAULT_MASK == 0xA80425FB
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == DEFAULT_MASK
    assert caps["CapInh"] == caps["CapAmb"] == 0
    assert seen["nnp"] == "1"


def test_no_mount_no_module_no_sys_admin(seen: dict) -> None:
    assert seen["mount"] == "EPERM"
    # A kernel built without module support answers ENOSYS before any capability
    # check (this machine's does); the bounding set has no CAP_SYS_MODULE either way.
    assert seen["module"] in ("EPERM", "ENOSYS")
    assert not int(seen["caps"]["CapBnd"], 16) & (1 << 16)
    assert seen["sethostname"] == "EPERM", "CAP_SYS_ADMIN is gone"
    assert seen["unshare"] == "EPERM"


def test_host_processes_are_invisible(seen: dict) -> None:
    assert seen["pids"] == [1, 2]


def test_kernel_state_is_masked(seen: dict) -> None:
    on_host = [p for p in MASKED if Path(p).exists()]
    assert on_host, "this machine has none of the masked paths: the test proves nothing"
    assert Path("/proc/timer_list").read_text() != "", "the host's is not empty"
    assert sorted(seen["masked"]) == sorted(on_host)
    for path, content in seen["masked"].items():
        assert content in ("", []), path


def test_writes_only_to_tmp_and_volumes(seen: dict) -> None:
    writes = seen["writes"]
    assert writes.pop("/tmp/probe") is True
    assert writes.pop("/shared/probe") is True
    for path, result in writes.items():
        assert result in ("EROFS", "EACCES", "EPERM"), (path, result)
    assert not Path("/etc/probe").exists() and not Path("/probe").exists()


def test_lab_network_has_no_default_route(seen: dict) -> None:
    assert "00000000" not in seen["routes"], "no default route"
    assert len(seen["routes"]) == 1, "only the lab's own /24"
    assert seen["outside"] == "ENETUNREACH"


def test_no_network_is_loopback_only(rt: LocalRuntime) -> None:
    alone = probe(rt, "alone")
    assert alone["routes"] == []
    assert alone["outside"] == "ENETUNREACH"


def test_a_user_workload_has_no_capabilities(rt: LocalRuntime) -> None:
    seen = probe(rt, "nobody", user=(65534, 65534))
    caps = {k: int(v, 16) for k, v in seen["caps"].items()}
    assert caps["CapEff"] == caps["CapPrm"] == 0
    assert caps["CapBnd"] == DEFAULT_MASK
    assert seen["nnp"] == "1"
    assert seen["writes"]["/tmp/probe"] is True
