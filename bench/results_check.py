"""Field-by-field checks of a results document, so that a bad file fails in one clear line.

The report trusts what passes here: a cell's numbers are finite and not
negative, its mode and status are known, its blocks are objects of numbers.
Keys that are not checked are allowed, because the schema grows (a cell's
``messages_server``, say, or a new role in ``cpu_us_per_msg``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

MODES = ("latency", "throughput")
STATUSES = ("ok", "failed")
MESSAGE_COUNTS = ("sent", "received", "lost", "duplicated", "reordered", "corrupt")
LATENCY_FIELDS = ("count", "min", "p50", "p90", "p99", "p999", "max", "mean")
THROUGHPUT_FIELDS = ("msgs_per_s", "bytes_per_s")
SHOWN_CHARS = 40


class Invalid(ValueError):
    """One field is wrong; the message starts with the field's dotted name."""


def shown(value: Any) -> str:
    """A found value as JSON would spell it (NaN, null, "x"), cut short if long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _is_int(value: Any) -> bool:
    # JSON true and false load as bool, a subclass of int; they are not counts.
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _number(value: Any) -> bool:
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    return ok and value >= 0


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _list(value: Any) -> bool:
    return isinstance(value, list)


def _object(value: Any) -> bool:
    return isinstance(value, dict)


Rule = tuple[str, Callable[[Any], bool]]
COUNT: Rule = ("an integer ≥ 0", _count)
NUMBER: Rule = ("a finite number ≥ 0", _number)
TEXT: Rule = ("a string", _text)
LIST: Rule = ("a list", _list)
OBJECT: Rule = ("an object", _object)


def _need(field: str, value: Any, rule: Rule, *, nullable: bool = False) -> None:
    what, ok = rule
    if (value is None and nullable) or (value is not None and ok(value)):
        return
    raise Invalid(f"{field} must be {what}{' or null' if nullable else ''}, found {shown(value)}")


def _one_of(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        spelled = " or ".join(json.dumps(a) for a in allowed)
        raise Invalid(f"{field} must be {spelled}, found {shown(value)}")


def _block(
    owner: Mapping[str, Any], name: str, keys: tuple[str, ...], rules: Mapping[str, Rule]
) -> dict[str, Any] | None:
    """``owner[name]``: null, or an object holding every one of ``keys`` by its rule."""
    block = owner.get(name)
    _need(name, block, OBJECT, nullable=True)
    if block is None:
        return None
    for key in keys:
        if key not in block:
            raise Invalid(f"{name}.{key} is missing")
        _need(f"{name}.{key}", block[key], rules.get(key, NUMBER))
    return block


def check_cell(cell: Mapping[str, Any]) -> None:
    """Raise :class:`Invalid` naming the first wrong field of ``cell``."""
    _need("transport", cell["transport"], TEXT)
    _need("variant", cell["variant"], TEXT, nullable=True)
    _one_of("mode", cell["mode"], MODES)
    payload = cell["payload_bytes"]
    if not (_is_int(payload) and payload >= 1):
        raise Invalid(f"payload_bytes must be an integer ≥ 1, found {shown(payload)}")
    _one_of("status", cell["status"], STATUSES)
    _need("notes", cell["notes"], LIST, nullable=True)
    _block(cell, "messages", MESSAGE_COUNTS, dict.fromkeys(MESSAGE_COUNTS, COUNT))
    _block(cell, "latency_us", LATENCY_FIELDS, {"count": COUNT})
    throughput = _block(cell, "throughput", THROUGHPUT_FIELDS, {})
    for key, value in (throughput or {}).items():
        _need(f"throughput.{key}", value, NUMBER)
    cpu = cell["cpu_us_per_msg"]
    _need("cpu_us_per_msg", cpu, OBJECT, nullable=True)
    # One entry per role, and roles grow (a broker container, say): any name will do.
    for role, value in (cpu or {}).items():
        _need(f"cpu_us_per_msg.{role}", value, NUMBER, nullable=True)


def _loads(host_load: Mapping[str, Any]) -> None:
    for when in ("start", "end"):
        triple = host_load.get(when)
        field = f"host_load.{when}"
        if triple is not None and not (_list(triple) and len(triple) == 3):
            raise Invalid(
                f"{field} must be a list of 3 load averages or null, found {shown(triple)}"
            )
        for i, value in enumerate(triple or ()):
            _need(f"{field}[{i}]", value, NUMBER)


def check_run(run: Mapping[str, Any]) -> None:
    """Raise :class:`Invalid` naming the first wrong field of ``run`` that a report reads."""
    _need("end", run.get("end"), TEXT, nullable=True)
    _need("planned_cells", run.get("planned_cells"), COUNT, nullable=True)
    _need("versions", run.get("versions"), OBJECT, nullable=True)
    interrupted = run.get("interrupted")
    _need("interrupted", interrupted, OBJECT, nullable=True)
    for key in ("reason", "at"):
        if interrupted is not None:
            _need(f"interrupted.{key}", interrupted.get(key), TEXT)
    host = run.get("host")
    _need("host", host, OBJECT, nullable=True)
    cores = (host or {}).get("cores")
    if cores is not None and not (_is_int(cores) and cores >= 1):
        raise Invalid(f"host.cores must be an integer ≥ 1 or null, found {shown(cores)}")
    host_load = run.get("host_load")
    _need("host_load", host_load, OBJECT, nullable=True)
    _loads(host_load or {})
