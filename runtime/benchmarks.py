"""How fast the runtime starts and stops a container, and what a published port costs.

``start_stop``: in a warm harness (one LocalRuntime, a few untimed starts
first), the time from ``Container.start()`` being called until the
workload's first act (``/bin/echo`` writing one line to a pipe) reaches the
harness, and from ``remove()`` being called (a ``sleep`` workload: TERM
through pid 1) until its cgroup and state are gone. With a Docker Engine
reachable, ``docker run --rm --network none <image> /bin/echo x`` is timed in
the same run, from a local image imported from the same binaries.

``proxy_latency``: 64-byte round trips to an echo server in a container on
the lab network, through ``-p`` (host loopback → proxy → lab bridge →
container) and directly (a socket made in the lab namespace → container).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.container import ContainerSpec
from runtime.local import LocalRuntime
from runtime.proxy import socket_in
from runtime.records import Record

ECHO_SERVER = """
import socket, threading
def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while d := c.recv(65536):
        c.sendall(d)
s = socket.create_server(("0.0.0.0", 7000))
print("ready", flush=True)
while True:
    threading.Thread(target=echo, args=(s.accept()[0],)).start()
"""


@dataclass(frozen=True)
class Summary:
    n: int
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Summary:
        ms = sorted(s / 1e6 for s in samples_ns)
        return cls(len(ms), statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * len(ms)))])

    def text(self) -> str:
        return f"p50 {self.p50_ms:7.2f} ms   p95 {self.p95_ms:7.2f} ms   (n={self.n})"


def start_stop(n: int, *, docker: bool = False, warmup: int = 5) -> dict[str, Summary]:
    starts, stops = [], []
    with LocalRuntime() as rt:
        for i in range(warmup + n):
            c = rt.container(
                ContainerSpec(name=f"s{i}", command=("/bin/echo", "x"), stdout_pipe=True)
            )
            t0 = time.perf_counter_ns()
            c.start()
            assert c.stdout is not None
            c.stdout.readline()
            t1 = time.perf_counter_ns()
            c.remove()
            s = rt.container(ContainerSpec(name=f"t{i}", command=("sleep", "60")))
            s.start()
            t2 = time.perf_counter_ns()
            s.remove()
            t3 = time.perf_counter_ns()
            if i >= warmup:
                starts.append(t1 - t0)
                stops.append(t3 - t2)
    found = {"start": Summary.of(starts), "stop": Summary.of(stops)}
    if docker:
        found["docker run"] = Summary.of(docker_runs(max(10, n // 3)))
    return found


def _tiny_rootfs(into: Path) -> None:
    """/bin/echo and the libraries it links, nothing else."""
    ldd = subprocess.run(["ldd", "/bin/echo"], capture_output=True, text=True, check=True).stdout
    libs = [part for line in ldd.splitlines() for part in line.split() if part.startswith("/")]
    for path in ["/bin/echo", *libs]:
        target = into / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


def docker_runs(n: int) -> list[int]:
    """Wall time of ``docker run --rm`` of /bin/echo, n times (raises if Docker is unusable)."""
    subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=20)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        _tiny_rootfs(root)
        tar = Path(tmp) / "echo.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
        subprocess.run(["docker", "import", str(tar), "ipcbench-echo:bench"],
                       capture_output=True, check=True)  # fmt: skip
    cmd = ["docker", "run", "--rm", "--network", "none", "ipcbench-echo:bench", "/bin/echo", "x"]
    try:
        subprocess.run(cmd, capture_output=True, check=True)  # warm
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            subprocess.run(cmd, capture_output=True, check=True)
            samples.append(time.perf_counter_ns() - t0)
        return samples
    finally:
        subprocess.run(["docker", "rmi", "ipcbench-echo:bench"], capture_output=True)


def print_start(found: dict[str, Summary]) -> None:
    for what, summary in found.items():
        print(f"{what:<11} {summary.text()}")
    if "docker run" in found:
        docker, start = found["docker run"].p50_ms, found["start"].p50_ms
        both = start + found["stop"].p50_ms
        print(f"docker run / built-in start, p50: {docker / start:.1f}x")
        # `docker run --rm` also waits for the exit and the removal: compare with both.
        print(f"docker run / built-in start + stop, p50: {docker / both:.1f}x")


def _round_trips(sock: socket.socket, n: int) -> list[int]:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload, samples = b"x" * 64, []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sock.sendall(payload)
        got = 0
        while got < len(payload):
            got += len(sock.recv(65536))
        samples.append(time.perf_counter_ns() - t0)
    return samples[n // 10 :]  # the first tenth warms up


def proxy_latency(n: int) -> dict[str, Summary]:
    """Round trips through ``-p`` (the proxy in the container's monitor process) and direct."""
    name, port = f"bench-proxy-{os.getpid()}", _free_port()
    cli = [sys.executable, "-m", "runtime.cli", "container"]
    run = [*cli, "run", "-d", "--rm", "--name", name, "-p", f"{port}:7000", "--"]
    subprocess.run([*run, sys.executable, "-c", ECHO_SERVER], check=True, capture_output=True)
    try:
        config = Record.get(name).config()
        via = _connect_when_ready(port)
        fd = os.open(f"/proc/{config['lab_pid']}/ns/net", os.O_RDONLY)
        direct = socket_in(fd)
        os.close(fd)
        direct.settimeout(5)
        direct.connect((config["address"], 7000))
        with via, direct:
            # Interleaved in blocks so that drift hits both paths alike.
            samples: dict[str, list[int]] = {"direct": [], "proxy": []}
            for _ in range(4):
                samples["direct"] += _round_trips(direct, n // 4)
                samples["proxy"] += _round_trips(via, n // 4)
    finally:
        subprocess.run([*cli, "stop", "-t", "1", name], capture_output=True)
    return {k: Summary.of(v) for k, v in samples.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect_when_ready(port: int) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:  # the proxy accepts at once; the echo server may not listen yet
            s.sendall(b"x")
            if s.recv(1) == b"x":
                return s
        except OSError:
            pass
        s.close()
        if time.monotonic() > deadline:
            raise TimeoutError("the echo server never answered through the proxy")
        time.sleep(0.05)


def print_proxy(found: dict[str, Summary]) -> None:
    for what, s in found.items():
        print(
            f"{what:<7} p50 {s.p50_ms * 1000:6.1f} us   p95 {s.p95_ms * 1000:6.1f} us   (n={s.n})"
        )
    added = (found["proxy"].p50_ms - found["direct"].p50_ms) * 1000
    print(f"the proxy adds {added:.0f} us to a 64-byte round trip (p50)")
