"""The command line as a user meets it: bad input, list, a quick run end to end, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import transports
from bench import cli


def ipcbench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parent.parent,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--transport", "pigeon"], "unknown transport 'pigeon'"),
        (["--transport", "tcp:fast"], "has no variant 'fast'"),
        (["--size", "12parsecs"], "malformed size '12parsecs'"),
        (["--size", "0"], "must be at least 1 byte"),
        (["--size", "64M"], "larger than tcp carries"),
        (["--messages", "0"], "messages must be between 1 and"),
        (["--messages", "100000000000000000000"], "messages must be between 1 and"),
        (["--size", "1.5K"], "malformed size '1.5K'"),
        (["--size", "\u0661\u0662"], "malformed size"),
        (["--transport", "uds:"], "a variant must follow the colon"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], expected: str) -> None:
    for command in ("run", "list"):
        proc = ipcbench(command, *args)
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("transports = [", "malformed scenario"),
        ("colour = 'blue'", "unknown keys colour"),
        ("sizes = 64", "'sizes' must be a list"),
        ("modes = ['sideways']", "unknown mode 'sideways'"),
        ("[options.tcp]\nwarp = 9", "tcp has no option warp"),
        ("[options.tcp]\nsndbuf = 'big'", "option tcp.sndbuf must be int"),
        ("[options.tcp]\nsndbuf = -1", "option tcp.sndbuf must be from 0"),
        ("op_timeout_s = nan", "'op_timeout_s' must be seconds"),
        ("op_timeout_s = 0", "'op_timeout_s' must be seconds"),
        ("op_timeout_s = '5'", "'op_timeout_s' must be seconds"),
        ("sizes = []", "'sizes' is empty"),
        ("transports = []", "'transports' is empty"),
        ("warmup = 1000000000", "'warmup' must be an integer from 0"),
    ],
)
def test_malformed_scenario_file(tmp_path: Path, text: str, expected: str) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(text)
    proc = ipcbench("run", str(scenario))
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_binary_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_bytes(b"\xff\xfe\x00binary")
    proc = ipcbench("run", str(scenario))
    assert proc.returncode == 2 and "not UTF-8 text" in proc.stderr


@pytest.mark.parametrize("size", ["64", "64B", "1k", "1KB", "1KiB", "1kib", "1M"])
def test_size_spellings(size: str) -> None:
    proc = ipcbench("list", "--transport", "tcp", "--mode", "latency", "--size", size)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.needs_root
def test_unusable_out_folders(tmp_path: Path) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "results.json").write_text("{}")
    for out, expected in [
        (a_file, "is not a folder"),
        (a_file / "sub", "cannot write"),
        (taken, "already holds a run"),
        ("", "--out is empty"),
    ]:
        proc = ipcbench("run", "--quick", "--out", str(out))
        assert proc.returncode == 2, (out, proc.stderr)
        assert expected in proc.stderr and "cells" not in proc.stdout


def test_missing_scenario_file() -> None:
    proc = ipcbench("run", "/no/such/scenario.toml")
    assert proc.returncode == 2 and "cannot read scenario" in proc.stderr


def test_run_refuses_without_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["run", "--quick"]) == 2
    assert "needs root" in capsys.readouterr().err


def test_list_shows_transports_modes_and_cells() -> None:
    proc = ipcbench("list", "--transport", "tcp", "--size", "64", "--size", "1K")
    assert proc.returncode == 0, proc.stderr
    assert "uds" in proc.stdout and "throughput" in proc.stdout
    assert "4 cells" in proc.stdout
    assert "tcp latency 64B" in proc.stdout


def test_report_of_a_missing_folder(tmp_path: Path) -> None:
    proc = ipcbench("report", str(tmp_path))
    assert proc.returncode == 2 and "results.json" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.needs_root
@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = ipcbench("run", "--quick", "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == "ipcbench/results@1"
    assert results["run"]["end"]
    cells = results["cells"]
    assert {c["transport"] for c in cells} == set(transports.names())
    assert {c["mode"] for c in cells} == {"latency", "throughput"}
    assert all(c["status"] == "ok" for c in cells), [c["error"] for c in cells]
    for name in ("results.csv", "report.md", "latency.png", "throughput.png"):
        assert (out / name).stat().st_size > 0
    (out / "report.md").unlink()
    again = ipcbench("report", str(out))
    assert again.returncode == 0 and (out / "report.md").exists()


def test_a_variant_that_cannot_do_a_mode_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import scenario
    from transports.tcp import TcpTransport

    monkeypatch.setattr(
        TcpTransport, "how", classmethod(lambda cls, v, m: None if m == "throughput" else "x")
    )
    chosen = scenario.build(transports_=["tcp", "uds"], sizes=["64"])
    assert [(c.transport, c.mode) for c in chosen.cells()] == [
        ("tcp", "latency"),
        ("uds", "latency"),
        ("uds", "throughput"),
    ]
    assert chosen.skipped() == ["tcp cannot do throughput mode: skipped"]
