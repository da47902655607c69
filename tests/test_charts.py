"""Chart axes: a log axis carries numbers at both ends and between, whatever its range."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from bench import charts
from tests.test_report import check_png


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [(50, 400, [20, 50, 100, 200, 500]), (95, 105, [50, 100, 200]), (7, 7, [5, 10, 20]),
     (18, 160, [10, 20, 50, 100, 200]), (1.5, 900, [1, 10, 100, 1000])],
)  # fmt: skip
def test_log_axis_ticks_label_both_ends_of_a_narrow_range(
    low: float, high: float, ticks: list[float]
) -> None:
    bottom, top, got = charts.log_ticks(low, high)
    assert got == pytest.approx(ticks) and (bottom, top) == (got[0], got[-1])


def test_log_axis_has_three_to_fourteen_labelled_ticks_on_any_range() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        low = 10 ** rng.uniform(-4, 8)
        high = low * 10 ** rng.choice([0, rng.uniform(0, 0.1), rng.uniform(0, 9)])
        bottom, top, ticks = charts.log_ticks(low, high)
        assert 3 <= len(ticks) <= 14, (low, high, ticks)
        assert bottom < low and top > high, (low, high, ticks)
        for t in ticks:
            mantissa = t / 10 ** math.floor(math.log10(t) + 1e-9)
            assert round(mantissa, 6) in (1, 2, 5), (low, high, ticks)


def test_latency_chart_labels_at_least_three_ticks_on_a_narrow_range(tmp_path: Path) -> None:
    series = [charts.Series("tcp", (50.0, 80.0), (False, False), (200.0, 400.0)),
              charts.Series("uds", (60.0, None), (False, True), (120.0, None))]  # fmt: skip
    path = charts.latency_chart(tmp_path / "l.png", sizes=["64 B", "1 KiB"], series=series,
                                title="t")  # fmt: skip
    check_png(path)
    fig = Figure()
    ax = fig.add_subplot()
    charts.grouped_points(ax, ["64 B", "1 KiB"], series)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    ticks = [*ax.get_yticklabels(), *ax.get_yticklabels(minor=True)]
    inside = [t for t in ticks if low * 0.999 <= t.get_position()[1] <= high * 1.001]
    shown = sorted((t.get_position()[1], t.get_text()) for t in inside if t.get_text())
    # Both ends of the axis carry a number, and the 1-2-5 steps between them too.
    assert (low, high) == (20, 500)
    assert [text for _, text in shown] == ["20", "50", "100", "200", "500"]
