"""What a run measures: the scenario, from the command line or a TOML file.

A scenario expands into *cells*: one (transport, variant, mode, payload size)
each, every cell measured in fresh containers. Bad input raises
:class:`ScenarioError` with one line that names what is wrong.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transports
from bench.protocol import HEADER_BYTES
from transports.base import MODES

DEFAULT_SIZES = (64, 1024, 65536)
QUICK_SIZES = (1024,)
# Messages measured per cell, by mode, after warm-up.
DEFAULT_MESSAGES = {"latency": 20000, "throughput": 50000}
QUICK_MESSAGES = {"latency": 2000, "throughput": 10000}
# Slow strategies (polling, a broker, a database) would take minutes for the
# default counts: a cell's measured phase also ends after this many seconds.
DEFAULT_MAX_SECONDS = 2.0
QUICK_MAX_SECONDS = 0.5
# Rough cost per cell for `ipcbench list`: start two containers, then per message.
CELL_OVERHEAD_S = 0.6
PER_MESSAGE_S = {"latency": 60e-6, "throughput": 25e-6}


WINDOW_BYTES = 4 << 20  # in-flight bytes at most in throughput mode
MAX_WINDOW = 256  # in-flight messages at most
MAX_MESSAGES = 10_000_000  # per cell: keeps a cell's samples in memory and its time bounded
MAX_TIMEOUT_S = 600.0


class ScenarioError(Exception):
    """The scenario is malformed; the message says where."""


@dataclass(frozen=True)
class Cell:
    transport: str
    variant: str | None
    mode: str
    payload_bytes: int
    messages: int
    warmup: int
    #: The measured phase ends after ``messages`` or this long, whichever comes first.
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.mode == "throughput":  # whole credit batches, so the warm-up drains exactly
            batch = self.credit_every
            object.__setattr__(self, "warmup", -(-self.warmup // batch) * batch)

    @property
    def window(self) -> int:
        """Messages in flight at most in throughput mode (flow control, recorded)."""
        fixed = transports.get(self.transport).stream_window(self.variant)
        return fixed or max(4, min(MAX_WINDOW, WINDOW_BYTES // self.payload_bytes))

    @property
    def credit_every(self) -> int:
        """The receiver returns a credit after this many messages: a quarter window."""
        return max(1, self.window // 4)

    @property
    def label(self) -> str:
        name = f"{self.transport}:{self.variant}" if self.variant else self.transport
        return f"{name} {self.mode} {self.payload_bytes}B"

    def estimate_s(self) -> float:
        per = PER_MESSAGE_S[self.mode] * (1 + self.payload_bytes / 65536)
        exchange = (self.messages + self.warmup) * per
        if self.max_seconds is not None:
            exchange = min(exchange, 1.2 * self.max_seconds)
        return CELL_OVERHEAD_S + exchange


@dataclass(frozen=True)
class Scenario:
    transports: tuple[tuple[str, str | None], ...]
    sizes: tuple[int, ...] = DEFAULT_SIZES
    modes: tuple[str, ...] = MODES
    messages: int | None = None  # None: the per-mode default
    warmup: int | None = None  # None: a tenth of the messages
    op_timeout_s: float = 5.0
    quick: bool = False
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each cell's measured phase ends after its messages or this long; None: no limit.
    max_seconds: float | None = DEFAULT_MAX_SECONDS
    #: Limits for the client and server containers (cpus, cpuset_cpus, memory, pids_limit).
    limits: dict[str, Any] = field(default_factory=dict)

    def skipped(self) -> list[str]:
        """Notes for the selected (variant, mode) pairs the variant cannot do."""
        return [
            f"{name}:{variant} cannot do {mode} mode: skipped" if variant else
            f"{name} cannot do {mode} mode: skipped"
            for (name, variant), mode in itertools.product(self.transports, self.modes)
            if transports.get(name).how(variant, mode) is None
        ]  # fmt: skip

    def cells(self) -> list[Cell]:
        defaults = QUICK_MESSAGES if self.quick else DEFAULT_MESSAGES
        out = []
        for (name, variant), mode, size in itertools.product(
            self.transports, self.modes, self.sizes
        ):
            if transports.get(name).how(variant, mode) is None:
                continue  # see skipped(): a variant that cannot do a mode is not a failure
            n = self.messages or defaults[mode]
            warmup = self.warmup if self.warmup is not None else max(1, n // 10)
            out.append(Cell(name, variant, mode, size, n, warmup, self.max_seconds))
        return out

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["transports"] = [f"{n}:{v}" if v else n for n, v in self.transports]
        return d


_SIZE = re.compile(r"\s*([0-9]+)\s*(?:([kmg])(?:i?b)?|b)?\s*", re.IGNORECASE | re.ASCII)


UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str | int) -> int:
    """Bytes: ``64``, ``64B``, ``1K``/``1KB``/``1KiB`` (1024), ``1M``/``1MiB`` (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        m = _SIZE.fullmatch(str(text))
        if not m:
            raise ScenarioError(f"malformed size {text!r}: use bytes, e.g. 64, 1K, 64KiB, 1M")
        size = int(m.group(1)) * UNITS[(m.group(2) or "").lower()]
    if size < 1:
        raise ScenarioError(f"size {text!r} must be at least 1 byte")
    return size


def parse_transport(text: str) -> tuple[str, str | None]:
    name, colon, variant = text.partition(":")
    if colon and not variant:
        raise ScenarioError(f"transport {text!r}: a variant must follow the colon")
    if name not in transports.names():
        known = ", ".join(transports.names())
        raise ScenarioError(f"unknown transport {name!r} (known: {known})")
    cls = transports.get(name)
    if variant and variant not in cls.variants:
        known = ", ".join(cls.variants) or "none"
        raise ScenarioError(f"transport {name!r} has no variant {variant!r} (variants: {known})")
    return name, variant or None


def expand_transports(selected: list[str]) -> list[tuple[str, str | None]]:
    """Every (name, variant) the selection names; a bare name means all its variants."""
    out: list[tuple[str, str | None]] = []
    for text in selected or transports.names():
        name, variant = parse_transport(text)
        declared: list[str | None] = list(transports.get(name).variants)
        variants = [variant] if variant else declared or [None]
        out += [(name, v) for v in variants if (name, v) not in out]
    return out


def build(
    *,
    file: Path | None = None,
    transports_: list[str] | None = None,
    sizes: list[str] | None = None,
    modes: list[str] | None = None,
    messages: int | None = None,
    quick: bool = False,
    max_seconds: float | None = None,
) -> Scenario:
    """The effective scenario: the file's settings, overridden by the command line."""
    data = load_toml(file) if file else {}
    if max_seconds is not None:
        data = {**data, "max_seconds": max_seconds}
    for key in ("transports", "sizes", "modes"):
        if key in data and data[key] == []:
            raise ScenarioError(f"scenario: {key!r} is empty; leave it out to mean all")
    chosen_transports = transports_ or _list(data, "transports", str)
    chosen_modes = modes or _list(data, "modes", str) or list(MODES)
    for mode in chosen_modes:
        if mode not in MODES:
            raise ScenarioError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
    default_sizes = QUICK_SIZES if quick else DEFAULT_SIZES
    raw_sizes = sizes or data.get("sizes") or list(default_sizes)
    if not isinstance(raw_sizes, list):
        raise ScenarioError("scenario: 'sizes' must be a list")
    scenario = Scenario(
        transports=tuple(expand_transports(chosen_transports)),
        sizes=tuple(dict.fromkeys(parse_size(s) for s in raw_sizes)),
        modes=tuple(dict.fromkeys(chosen_modes)),
        messages=messages if messages is not None else _int(data, "messages"),
        warmup=_int(data, "warmup", minimum=0, maximum=MAX_MESSAGES),
        op_timeout_s=_timeout(data),
        quick=quick or bool(data.get("quick", False)),
        options=_options(data),
        max_seconds=_max_seconds(data, quick=quick, messages_given=messages is not None),
        limits=_limits(data),
    )
    if scenario.messages is not None and not 1 <= scenario.messages <= MAX_MESSAGES:
        raise ScenarioError(f"messages must be between 1 and {MAX_MESSAGES:,}")
    _check_payload_limits(scenario)
    return scenario


def _check_payload_limits(scenario: Scenario) -> None:
    for name, variant in scenario.transports:
        limit = transports.get(name).max_payload - HEADER_BYTES
        for size in scenario.sizes:
            if size > limit:
                label = f"{name}:{variant}" if variant else name
                raise ScenarioError(f"size {size} B is larger than {label} carries ({limit} B)")


KNOWN_KEYS = {
    "limits",
    "max_seconds",
    "transports",
    "sizes",
    "modes",
    "messages",
    "warmup",
    "op_timeout_s",
    "quick",
    "options",
}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ScenarioError(f"malformed scenario {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"malformed scenario {path}: {exc}") from exc
    unknown = set(data) - KNOWN_KEYS
    if unknown:
        raise ScenarioError(f"scenario {path}: unknown keys {', '.join(sorted(unknown))}")
    return data


def _list(data: dict[str, Any], key: str, kind: type) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ScenarioError(f"scenario: {key!r} must be a list of {kind.__name__}")
    return value


def _int(
    data: dict[str, Any], key: str, minimum: int = 1, maximum: int = MAX_MESSAGES
) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ScenarioError(f"scenario: {key!r} must be an integer from {minimum} to {maximum:,}")
    return value


def _max_seconds(data: dict[str, Any], *, quick: bool, messages_given: bool) -> float | None:
    """The per-cell time limit: the scenario's (0 means none); else the default, unless
    the user asked for a number of messages, which is then honoured whole."""
    value = data.get("max_seconds")
    if value is None:
        if messages_given or "messages" in data:
            return None
        return QUICK_MAX_SECONDS if quick or data.get("quick") else DEFAULT_MAX_SECONDS
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0 <= value <= 3600:
        raise ScenarioError("scenario: 'max_seconds' must be seconds from 0 (no limit) to 3600")
    return float(value) or None


def _limits(data: dict[str, Any]) -> dict[str, Any]:
    """``[limits]``: cpus = 0.5, cpuset_cpus = "0", memory = "256M", pids_limit = 64."""
    table = data.get("limits", {})
    if not isinstance(table, dict):
        raise ScenarioError("scenario: 'limits' must be a table")
    unknown = set(table) - {"cpus", "cpuset_cpus", "memory", "pids_limit"}
    if unknown:
        raise ScenarioError(f"scenario: unknown limits {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "cpus" in table:
        cpus = table["cpus"]
        if not isinstance(cpus, int | float) or isinstance(cpus, bool) or not 0.01 <= cpus <= 1024:
            raise ScenarioError("scenario: limits.cpus must be a number from 0.01")
        out["cpus"] = float(cpus)
    if "cpuset_cpus" in table:
        if not isinstance(table["cpuset_cpus"], str) or not re.fullmatch(
            r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", table["cpuset_cpus"]
        ):
            raise ScenarioError('scenario: limits.cpuset_cpus must be a list like "0" or "0-1"')
        out["cpuset_cpus"] = table["cpuset_cpus"]
    if "memory" in table:
        out["memory"] = parse_size(table["memory"])
        if out["memory"] < 16 << 20:
            raise ScenarioError("scenario: limits.memory must be at least 16M")
    if "pids_limit" in table:
        out["pids_limit"] = _int(table, "pids_limit", minimum=8, maximum=1 << 22)
    return out


def _timeout(data: dict[str, Any]) -> float:
    value = data.get("op_timeout_s", 5.0)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0.01 <= value <= MAX_TIMEOUT_S:  # NaN fails the comparison too
        raise ScenarioError(
            f"scenario: 'op_timeout_s' must be seconds from 0.01 to {MAX_TIMEOUT_S}"
        )
    return float(value)


def _options(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ScenarioError("scenario: 'options' must be a table of tables")
    for name, table in options.items():
        if name not in transports.names() or not isinstance(table, dict):
            raise ScenarioError(f"scenario: options for unknown transport {name!r}")
        defaults = transports.get(name).options_type()
        fields = {f.name for f in dataclasses.fields(defaults)}
        unknown = set(table) - fields
        if unknown:
            raise ScenarioError(f"scenario: {name} has no option {', '.join(sorted(unknown))}")
        for key, value in table.items():
            _check_option(name, key, value, getattr(defaults, key))
    return options


def _check_option(transport: str, key: str, value: Any, default: Any) -> None:
    """An option takes the type of its default; numbers may not be negative."""
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ScenarioError(
            f"scenario: option {transport}.{key} must be {kind.__name__}, found {value!r}"
        )
    if isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value < 2**31:
        raise ScenarioError(f"scenario: option {transport}.{key} must be from 0 to 2^31-1")
