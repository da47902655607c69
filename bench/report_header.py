"""The head of ``report.md``: what ran where, whether it finished, how busy the host was."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.wording import plural

# Above this 1-minute load per core, other work competed with the run for CPU.
BUSY_PER_CORE = 0.5
LOADS = ("start", "end")


def busy_host(run: Mapping[str, Any]) -> str | None:
    """A warning if the 1-minute load average at the run's start or end was high, else None."""
    cores = (run.get("host") or {}).get("cores")
    load = run.get("host_load") or {}
    ones = [(when, triple[0]) for when in LOADS if (triple := load.get(when))]
    if not cores or not any(value > BUSY_PER_CORE * cores for _, value in ones):
        return None
    seen = " and ".join(f"{value:.2f} at the {when}" for when, value in ones)
    return (
        f"The host was busy: its 1-minute load average was {seen} on {plural(cores, 'core')} "
        f"(more than {BUSY_PER_CORE} per core), so other work was running. Absolute figures "
        "are inflated and unreliable; compare ratios only."
    )


def _flat(versions: Mapping[str, Any]) -> dict[str, Any]:
    """``{"python": "3.11", "libraries": {"x": "1"}}`` -> ``{"python": "3.11", "x": "1"}``."""
    flat: dict[str, Any] = {}
    for key, value in versions.items():
        flat.update(_flat(value) if isinstance(value, Mapping) else {key: value})
    return flat


def _measured(run: Mapping[str, Any], done: int) -> str:
    planned = run.get("planned_cells")
    return (
        plural(done, "cell") if planned is None else f"{done} of {plural(planned, 'planned cell')}"
    )


def _partial(run: Mapping[str, Any], done: int) -> list[str]:
    """A plain line when the results are partial, saying why and how much was measured."""
    interrupted = run.get("interrupted")
    if interrupted:
        line = (
            f"Run interrupted ({interrupted['reason']}) at {interrupted['at']}: measured "
            f"{_measured(run, done)}; these results are partial."
        )
    elif run.get("end") is None:
        # No end and no word of an interruption: the run was killed (SIGKILL, a power cut).
        line = (
            "No end time: the run was interrupted and these results are partial "
            f"(measured {_measured(run, done)})."
        )
    elif done < (run.get("planned_cells") or 0):
        line = f"The run ended after {_measured(run, done)}; these results are partial."
    else:
        return []
    return [f"**{line}**", ""]


def _end(run: Mapping[str, Any]) -> str:
    if run.get("end"):
        return str(run["end"])
    interrupted = run.get("interrupted")
    return f"interrupted at {interrupted['at']}" if interrupted else "no end time"


def _cells_line(run: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> str:
    statuses = [c["status"] for c in cells]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    planned = run.get("planned_cells")
    total = str(len(cells)) if planned is None else f"{len(cells)} of {planned} planned"
    return f"- Cells: {total} ({counts or 'none'}); full settings per cell in results.json"


def _cores(cores: int | None) -> str:
    return "? cores" if cores is None else plural(cores, "core")


def _load_lines(run: Mapping[str, Any]) -> list[str]:
    load = run.get("host_load") or {}
    seen = [
        f"{' / '.join(f'{x:.2f}' for x in triple)} at {when}"
        for when in LOADS
        if (triple := load.get(when))
    ]
    shown = [f"- Host load (1 / 5 / 15-minute averages): {', '.join(seen)}"] if seen else []
    busy = busy_host(run)
    return [*shown, f"- **Warning:** {busy}"] if busy else shown


def header(results: Mapping[str, Any]) -> list[str]:
    """The title and the run's facts, as markdown lines ending with a blank one."""
    run, cells = results["run"], results["cells"]
    host = run.get("host") or {}
    versions = ", ".join(f"{k} {v}" for k, v in _flat(run.get("versions") or {}).items())
    runtime = run.get("runtime")
    runtime = runtime.get("name") if isinstance(runtime, dict) else runtime
    return [
        f"# ipcbench run {run.get('id', 'unknown')}",
        "",
        *_partial(run, len(cells)),
        f"- Date: {run.get('start', 'unknown')} → {_end(run)}",
        f"- Host: {host.get('cpu_model', 'unknown CPU')}, {_cores(host.get('cores'))}, "
        f"kernel {host.get('kernel', '?')}, cgroup layout {host.get('cgroup_layout', '?')}",
        *_load_lines(run),
        f"- Commit: {run.get('commit') or 'unknown'}",
        f"- Runtime: {runtime or 'unknown'}; versions: {versions or 'unknown'}",
        _cells_line(run, cells),
        *_start_cost_line(cells),
        *[f"- Not measured: {note}" for note in run.get("skipped") or []],
        "",
    ]


def _start_cost_line(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """How much of the run went to starting containers (the built-in runtime's cost)."""
    starts = [ms for c in cells for ms in (c.get("container_start_ms") or {}).values()]
    total_s = sum(c.get("duration_s") or 0 for c in cells)
    if not starts or not total_s:
        return []
    ordered = sorted(starts)
    median = ordered[len(ordered) // 2]
    share = sum(starts) / 1000 / total_s
    return [
        f"- Containers: {plural(len(starts), 'start')}, median {median:.0f} ms each (until the "
        f"workload runs); {share:.0%} of the cells' time went to starting them"
    ]
