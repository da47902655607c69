"""The built-in runtime's containers are real: their namespaces are proven from inside."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from runtime.container import ContainerError, ContainerSpec, Volume
from runtime.local import LocalRuntime

pytestmark = pytest.mark.needs_root

PROBE = r"""
import json, os, socket
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
def writable(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError as e:
        return e.strerror
print(json.dumps({
    "pid": os.getpid(), "pids": pids, "pid1": open("/proc/1/cmdline").read().split("\0")[:2],
    "hostname": socket.gethostname(),
    "links": sorted(os.listdir("/sys/class/net")),
    "lo_up": int(open("/sys/class/net/lo/flags").read(), 16) & 1,
    "etc": writable("/etc/ipcbench-probe"), "usr": writable("/usr/ipcbench-probe"),
    "tmp": writable("/tmp/ipcbench-probe"),
    "hosts": open("/etc/hosts").read(),
}))
"""


def run_python(rt: LocalRuntime, name: str, code: str, net=None, volumes=()) -> tuple[int, str]:
    spec = ContainerSpec(
        name=name, command=(sys.executable, "-c", code), stdout_pipe=True, volumes=tuple(volumes)
    )
    with rt.container(spec, net) as c:
        c.start()
        assert c.stdout is not None
        out = c.stdout.read().decode()
        return c.wait(30), out + c.logs()


def test_namespaces_seen_from_inside(rt: LocalRuntime) -> None:
    with rt.network() as net:
        code, out = run_python(rt, "probe", PROBE, net)
    assert code == 0, out
    seen = json.loads(out.splitlines()[0])
    assert seen["pid"] == 2, "the workload is the first child of the container's own pid 1"
    assert seen["pids"] == [1, 2], "no host process is visible"
    assert "shim" in " ".join(seen["pid1"]) or "python" in seen["pid1"][0]
    assert seen["hostname"] == "probe" != socket.gethostname()
    assert seen["links"] == ["eth0", "lo"]
    assert seen["lo_up"] == 1
    assert seen["etc"] == "Read-only file system"
    assert seen["usr"] == "Read-only file system"
    assert seen["tmp"] is True
    assert "\tprobe" in seen["hosts"]
    assert not Path("/tmp/ipcbench-probe").exists(), "the container's /tmp is private"


def test_no_network_means_loopback_only(rt: LocalRuntime) -> None:
    code, out = run_python(rt, "alone", PROBE)
    seen = json.loads(out.splitlines()[0])
    assert code == 0
    assert seen["links"] == ["lo"] and seen["lo_up"] == 1


def test_shared_volume_and_name_resolution(rt: LocalRuntime) -> None:
    vol = rt.volume("shared")
    shared = (Volume(str(vol), "/shared"),)
    server_code = (
        "import socket; s = socket.create_server(('0.0.0.0', 7100)); "
        "open('/shared/ready', 'w').write('yes'); c, _ = s.accept(); "
        "c.sendall(c.recv(100).upper())"
    )
    client_code = (
        "import socket, time, os\n"
        "while not os.path.exists('/shared/ready'): time.sleep(0.01)\n"
        "c = socket.create_connection(('server', 7100), timeout=5)\n"
        "c.sendall(b'ping'); print(c.recv(100).decode(), open('/shared/ready').read())"
    )
    with rt.network() as net:
        server = rt.container(
            ContainerSpec(
                name="server", command=(sys.executable, "-c", server_code), volumes=shared
            ),
            net,
        )
        with server:
            server.start()
            code, out = run_python(rt, "client", client_code, net, shared)
            assert server.wait(10) == 0, server.logs()
    assert code == 0, out
    assert out.split()[:2] == ["PING", "yes"]


def test_exit_status_and_cpu_accounting(rt: LocalRuntime) -> None:
    spec = ContainerSpec(
        name="busy",
        command=(
            sys.executable,
            "-c",
            "import sys\nx = 0\nfor i in range(2_000_000): x += i\nsys.exit(3)",
        ),
    )
    with rt.container(spec) as c:
        c.start()
        assert c.wait(30) == 3
        assert c.cpu_ns() > 10_000_000, "a busy loop shows in the container's cgroup"


@pytest.mark.parametrize(("command", "code"), [("/no/such/program", 127), ("/etc", 126)])
def test_exec_failures_use_docker_codes(rt: LocalRuntime, command: str, code: int) -> None:
    with rt.container(ContainerSpec(name="bad", command=(command,))) as c:
        with pytest.raises(ContainerError) as err:
            c.start()
        assert err.value.exit_code == code


def test_stop_terminates_a_hung_workload(rt: LocalRuntime) -> None:
    spec = ContainerSpec(name="hang", command=("sh", "-c", "trap '' TERM; sleep 60"))
    with rt.container(spec) as c:
        c.start()
        code = c.stop(grace=0.2)
        assert code is not None and code != 0
        assert not c.cgroup.pids() if c.cgroup else True


def test_a_checkout_under_tmp_is_visible_inside(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The container's /tmp is private: a checkout there must be bound back in, read-only.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "marker").write_text("here")
    monkeypatch.setattr("runtime.container.PROJECT_ROOT", checkout)
    code = f"print(open('{checkout}/marker').read()); open('{checkout}/x', 'w')"
    status, out = run_python(rt, "tmpcheckout", code)
    assert "here" in out
    assert "Read-only file system" in out and status != 0
