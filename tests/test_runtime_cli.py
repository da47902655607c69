"""``ipcbench container ...`` and ``ipcbench image ...``, driven as a user would, as processes.

Every container gets a unique name and is removed in a ``finally``; every
call has a timeout.
"""

from __future__ import annotations

import os
import pty
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.records import Record, RecordError

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
CLI = [sys.executable, "-m", "bench.cli"]


def ipcbench(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]  # fmt: skip


@pytest.fixture
def name() -> Iterator[str]:
    n = f"t-{secrets.token_hex(3)}"
    yield n
    ipcbench("container", "rm", "-f", n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hello_explains_what_the_runtime_did() -> None:
    done = ipcbench("container", "run", "--rm", "hello")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Hello from ipcbench!")
    for fact in ("pivot_root", "namespaces", "cgroups", "CapEff 00000000a80425fb", "NoNewPrivs 1",
                 "these are all the processes you can see: [1, 2]"):  # fmt: skip
        assert fact in out, fact


def test_run_exits_with_the_containers_status(name: str) -> None:
    done = ipcbench("container", "run", "--rm", "--name", name, "-e", "WHO=world",
                    "--", "sh", "-c", 'echo "hello $WHO"; echo oops >&2; exit 3')  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == "hello world\n" and done.stderr == "oops\n"
    with pytest.raises(RecordError):
        Record.get(name)  # --rm


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--", "/no/such/program"], 127, "No such file"),
        (["--", "/etc"], 126, "Permission denied"),
        (["no-such-image"], 125, "no such image"),
        ([], 125, "no command"),
        (["-p", "99999:80", "--", "true"], 125, "invalid port"),
    ],
)
def test_runtime_failures_use_dockers_codes(argv: list[str], code: int, says: str) -> None:
    done = ipcbench("container", "run", "--rm", *argv)
    assert done.returncode == code, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_volumes_network_none_and_limits(name: str, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from the host\n")
    script = "cat /data/in; echo from inside > /data/out; ls /sys/class/net; cat /proc/self/status"
    done = ipcbench("container", "run", "--name", name, "--network", "none", "-v",
                    f"{tmp_path}:/data", "--pids-limit", "20", "--memory", "64m", "--cpus", "0.5",
                    "--", "sh", "-c", script)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("from the host\nlo\n")
    assert (tmp_path / "out").read_text() == "from inside\n"
    assert "NoNewPrivs:\t1" in done.stdout
    logs = ipcbench("container", "logs", name)
    assert logs.stdout.startswith("from the host"), "a foreground run keeps its log"
    assert name in ipcbench("container", "ps", "-a").stdout
    assert name not in ipcbench("container", "ps").stdout, "exited: only with -a"


def test_memory_limit_reports_oom(name: str) -> None:
    hog = "x = [bytearray(1 << 20) for _ in range(400)]"
    done = ipcbench("container", "run", "--name", name, "--memory", "48m", "--",
                    sys.executable, "-c", hog)  # fmt: skip
    assert done.returncode == 137
    assert "out of memory" in done.stderr
    assert "Exited (137) (OOM)" in ipcbench("container", "ps", "-a").stdout


def test_detached_ps_logs_exec_stop_rm(name: str) -> None:
    port = free_port()
    server = "echo started; exec python3 -m http.server 8000 --bind 0.0.0.0"
    done = ipcbench("container", "run", "-d", "--name", name, "-p", f"{port}:8000", "--",
                    "sh", "-c", server)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == name
    ps = ipcbench("container", "ps").stdout
    assert name in ps and "Up " in ps and f"127.0.0.1:{port}->8000/tcp" in ps
    body = http_get(port)
    assert body.startswith("HTTP/1.0 200"), body
    assert "GET / HTTP" in ipcbench("container", "logs", name).stderr
    inside = ipcbench("container", "exec", name, "--", "sh", "-c", "hostname; ls /proc")
    assert inside.returncode == 0
    lines = inside.stdout.split()
    assert lines[0] == name and "1" in lines and len([p for p in lines if p.isdigit()]) <= 5
    assert ipcbench("container", "exec", name, "--", "sh", "-c", "exit 4").returncode == 4
    assert ipcbench("container", "rm", name).returncode == 1, "running: refused without -f"
    assert ipcbench("container", "stop", "-t", "2", name).returncode == 0
    ps = ipcbench("container", "ps", "-a").stdout
    assert "Exited (143)" in ps
    assert ipcbench("container", "exec", name, "--", "true").returncode == 125
    with pytest.raises(OSError):
        http_get(port)
    assert ipcbench("container", "rm", name).returncode == 0
    assert name not in ipcbench("container", "ps", "-a").stdout


def http_get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(100).decode()


def test_published_port_without_a_network(name: str) -> None:
    port = free_port()
    done = ipcbench("container", "run", "-d", "--rm", "--name", name, "--network", "none",
                    "-p", f"{port}:8000", "--", "python3", "-m", "http.server", "8000")  # fmt: skip
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while True:
        try:
            assert http_get(port).startswith("HTTP/1.0 200")
            break
        except ConnectionError:  # the server inside may not listen yet
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert ipcbench("container", "stop", name).returncode == 0
    wait_gone(name)


def wait_gone(name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while name in ipcbench("container", "ps", "-a").stdout:
        assert time.monotonic() < deadline, f"{name} is still listed"
        time.sleep(0.1)


def test_a_name_in_use_is_refused(name: str) -> None:
    assert ipcbench("container", "run", "-d", "--name", name, "--", "sleep", "30").returncode == 0
    again = ipcbench("container", "run", "--name", name, "--", "true")
    assert again.returncode == 125 and "already in use" in again.stderr


def test_killed_monitor_then_gc(name: str) -> None:
    assert ipcbench("container", "run", "-d", "--name", name, "--", "sleep", "60").returncode == 0
    ipcbench("gc")
    record = Record.get(name)
    assert record.state() == "running", "gc leaves a live detached container alone"
    pid1 = record.config()["pid1"]
    monitor = record.owner_pid()
    assert monitor is not None
    os.kill(monitor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid1}").exists():
        assert time.monotonic() < deadline, "the container outlived its monitor"
        time.sleep(0.02)
    assert record.state() == "dead"
    assert f"record {record.dir}" in ipcbench("gc").stdout
    with pytest.raises(RecordError):
        Record.get(name)


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} in {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_interactive_shell_on_a_pty() -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execv(sys.executable, [*CLI, "container", "run", "--rm", "-it", "--", "sh"])
    try:
        read_until(fd, b"# ")
        os.write(fd, b"echo $((6 * 7)); tty; exit 5\n")
        out = read_until(fd, b"/dev/console")
        assert b"42" in out
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 5
    finally:
        with pytest.MonkeyPatch.context():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(fd)


def test_image_import_and_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for binary in ("/bin/sh", "/bin/cat", "/bin/ls"):
        copy_with_libs(binary, root)
    (root / "etc").mkdir()
    (root / "etc" / "hosts").write_text("")
    (root / "etc" / "motd").write_text("an imported image\n")
    tarball = tmp_path / "image.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
    image = f"img-{secrets.token_hex(3)}"
    try:
        done = ipcbench("image", "import", str(tarball), image)
        assert done.returncode == 0, done.stderr
        assert image in ipcbench("image", "ls").stdout
        run = ipcbench("container", "run", "--rm", image, "--", "sh", "-c",
                       "cat /etc/motd; ls /; ls /usr/bin/python3 || echo no-python")  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("an imported image\n")
        assert "no-python" in run.stdout, "the image's files, not the host's"
        assert ipcbench("image", "import", str(tarball), image).returncode == 1
    finally:
        ipcbench("image", "rm", image)
    assert image not in ipcbench("image", "ls").stdout


def copy_with_libs(binary: str, root: Path) -> None:
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = [p for line in ldd.splitlines() for p in line.split() if p.startswith("/")]
    for path in (binary, *libs):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)
