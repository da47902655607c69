"""PNG charts for a report, drawn from plain series (this module knows no cells).

Figures are built with :class:`matplotlib.figure.Figure` and never through
``pyplot``: no global backend, no figure registry to leak, nothing tries to
open a window on a headless host. ``Figure.savefig`` renders PNG with Agg.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

DPI = 110
# Shapes as well as colours: with many series, colour alone is ambiguous (and
# unreadable to colour-blind readers); ten default colours would repeat.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _colour(i: int, n: int) -> Any:
    """Ten well-separated colours for up to ten series, twenty beyond (tab20)."""
    return f"C{i}" if n <= 10 else matplotlib.colormaps["tab20"](i % 20)


FAILED: dict[str, Any] = {"color": "crimson", "marker": "x", "markersize": 8, "markeredgewidth": 2,
          "linestyle": "none"}  # fmt: skip


@dataclass(frozen=True)
class Series:
    """One transport's values across payload sizes, aligned with the chart's ``sizes``.

    ``values[i]`` is the bar height at size ``i`` or ``None`` when there is no
    value; ``upper[i]`` (optional) is the top of a whisker; ``failed[i]``
    marks a size whose cell ran and failed, drawn as a red cross.
    """

    label: str
    values: tuple[float | None, ...]
    failed: tuple[bool, ...]
    upper: tuple[float | None, ...] | None = None


def _plain(value: float, _pos: object = None) -> str:
    # "0.1", "10", "1,000" read faster than 10^-1, 10^1, 10^3 for most readers.
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


# Room beyond the extreme values, as a factor on the log axis, so that no marker
# sits on the frame; past it the axis runs on to the next labelled tick.
PAD = 1.1
MIN_TICKS = 3
# Over a range wider than this many decades 1-2-5 ticks would crowd: decades only.
DECADES_ONLY_ABOVE = 2.5


def log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """Limits and labelled ticks of a log axis showing values from ``low`` to ``high`` (> 0).

    The limits are ticks themselves, so both ends of the axis carry a number,
    and there are at least :data:`MIN_TICKS` of them: a narrow range (50-400
    µs, say) gets 1-2-5 ticks (20, 50, 100, 200, 500), a wide one decades.
    """
    low, high = low / PAD, high * PAD
    steps = (1,) if math.log10(high / low) > DECADES_ONLY_ABOVE else (1, 2, 5)
    first, last = math.floor(math.log10(low)) - 2, math.ceil(math.log10(high)) + 2
    ladder = [m * 10.0**e for e in range(first, last + 1) for m in steps]
    # The tolerance keeps 10.0**-1 * 5 and its like from missing by a rounding error.
    bottom = max(i for i, t in enumerate(ladder) if t <= low * (1 + 1e-9))
    top = min(i for i, t in enumerate(ladder) if t >= high * (1 - 1e-9))
    upwards = True
    while top - bottom + 1 < MIN_TICKS:  # widen by turns, upwards first
        top, bottom = (top + 1, bottom) if upwards else (top, bottom - 1)
        upwards = not upwards
    ticks = ladder[bottom : top + 1]
    return ticks[0], ticks[-1], ticks


def _log_axis(ax: Axes, values: Sequence[float]) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if not values:
        return
    bottom, top, ticks = log_ticks(min(values), max(values))
    ax.set_ylim(bottom, top)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    # Unlabelled minor ticks at 2..9 draw the fine grid; any on a major tick are dropped.
    ax.yaxis.set_minor_locator(LogLocator(subs=tuple(range(2, 10))))


def grouped_points(ax: Axes, sizes: Sequence[str], series: Sequence[Series]) -> None:
    """One marker per value, grouped by size, on a log axis.

    Points, not bars: a bar on a log axis starts at an arbitrary floor, so its
    height misstates ratios (a value half of another can look five times
    smaller). A marker's position on the log axis states the ratio exactly.
    """
    width = 0.8 / max(1, len(series))
    drawn = [v for s in series for v in (*s.values, *(s.upper or ())) if v]
    _log_axis(ax, drawn)
    for i, s in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        xs = [j + offset for j in range(len(sizes))]
        uppers = s.upper if s.upper is not None else (None,) * len(sizes)
        # Log axes cannot show zero, so a zero or missing value draws nothing.
        shown = [(x, v, u) for x, v, u in zip(xs, s.values, uppers, strict=True) if v]
        ax.plot([x for x, _, _ in shown], [v for _, v, _ in shown], linestyle="none",
                marker=MARKERS[i % len(MARKERS)], markersize=8, color=_colour(i, len(series)),
                label=s.label, zorder=3)  # fmt: skip
        ups = [(x, v, u) for x, v, u in shown if u is not None and v is not None]
        if ups:
            whiskers = [[0.0] * len(ups), [u - v for _, v, u in ups]]
            ax.errorbar([x for x, _, _ in ups], [v for _, v, _ in ups], yerr=whiskers,
                        fmt="none", ecolor=_colour(i, len(series)), capsize=5,
                        elinewidth=1.5)  # fmt: skip
        failed = [x for x, f in zip(xs, s.failed, strict=True) if f]
        # Crosses near the bottom in axes coordinates: a failed cell has no value to place.
        ax.plot(failed, [0.03] * len(failed), transform=ax.get_xaxis_transform(), **FAILED)
    ax.set_xticks(range(len(sizes)), list(sizes))
    # Fixed limits: a series with no value at the first or last size must still have its slot.
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    for boundary in range(len(sizes) - 1):
        ax.axvline(boundary + 0.5, color="grey", alpha=0.3, linewidth=0.8)
    ax.set_xlabel("payload size (bytes per message, KiB = 1024 B)")
    ax.grid(axis="y", which="major", alpha=0.4, zorder=0)
    ax.grid(axis="y", which="minor", alpha=0.15, zorder=0)


def _legend(fig: Figure, handles: Sequence[Artist], series: Sequence[Series]) -> None:
    if any(any(s.failed) for s in series):
        handles = [*handles, Line2D([], [], label="cell failed", **FAILED)]
    # Below the axes, so that no number of transports hides a bar.
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=9)


def latency_chart(
    path: Path, *, sizes: Sequence[str], series: Sequence[Series], title: str
) -> Path:
    """A point at the median round trip with a whisker up to p99, per transport and size."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    grouped_points(ax, sizes, series)
    ax.set_ylabel("round-trip time (µs, log scale)")
    ax.set_title(title)
    whisker = Line2D([], [], color="black", marker="o", markersize=6, linestyle="-",
                     linewidth=1, label="point = p50, whisker top = p99")  # fmt: skip
    handles, _ = ax.get_legend_handles_labels()
    _legend(fig, [*handles, whisker], series)
    fig.savefig(path, dpi=DPI)
    return path


def throughput_chart(
    path: Path,
    *,
    sizes: Sequence[str],
    msgs: Sequence[Series],
    mbytes: Sequence[Series],
    title: str,
) -> Path:
    """Two panels, messages per second and MB/s, per transport and size."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    grouped_points(left, sizes, msgs)
    left.set_ylabel("messages per second (log scale)")
    left.set_title("messages per second")
    grouped_points(right, sizes, mbytes)
    right.set_ylabel("MB/s (MB = 10⁶ bytes, log scale)")
    right.set_title("bytes per second")
    handles, _ = left.get_legend_handles_labels()
    _legend(fig, handles, msgs)
    fig.suptitle(title)
    fig.savefig(path, dpi=DPI)
    return path
