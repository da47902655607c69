"""Latency statistics: one reusable summary type for a list of samples.

Samples are integer nanoseconds (``time.perf_counter_ns()`` differences);
the summary keeps them as integers and only :meth:`LatencySummary.to_us_dict`
converts, for the results file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

# Exact fractions, not floats: ceil(0.999 * n) must not round the wrong way.
PERCENTILES: dict[str, Fraction] = {
    "p50": Fraction(50, 100),
    "p90": Fraction(90, 100),
    "p99": Fraction(99, 100),
    "p999": Fraction(999, 1000),
}


def nearest_rank(sorted_ns: Sequence[int], quantile: Fraction) -> int:
    """The nearest-rank percentile of ascending ``sorted_ns``.

    The value at 1-based rank ``ceil(quantile * n)`` (at least rank 1): the
    smallest sample such that at least ``quantile`` of all samples are less
    than or equal to it. It is always one of the samples, never interpolated.
    """
    if not sorted_ns:
        raise ValueError("no samples")
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile {quantile} is outside [0, 1]")
    n = len(sorted_ns)
    rank = max(1, -(-quantile.numerator * n // quantile.denominator))
    return sorted_ns[rank - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Count, extremes, nearest-rank percentiles and mean of latency samples.

    All values are nanoseconds; ``mean`` is the only non-integer. Percentiles
    use the nearest-rank definition (see :func:`nearest_rank`), which is what
    HdrHistogram reports up to its bucket resolution, so a later switch to
    recording histograms keeps the numbers comparable.
    """

    count: int
    min: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
    mean: float

    @classmethod
    def from_ns(cls, samples: Iterable[int]) -> LatencySummary:
        """Summarise integer nanosecond samples (any order); sorts once, O(n log n)."""
        ordered = sorted(int(s) for s in samples)
        if not ordered:
            raise ValueError("cannot summarise an empty list of latency samples")
        if ordered[0] < 0:
            # A negative interval means a clock or bookkeeping bug upstream.
            raise ValueError(f"negative latency sample: {ordered[0]} ns")
        ranks = {name: nearest_rank(ordered, q) for name, q in PERCENTILES.items()}
        return cls(
            count=len(ordered),
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
            **ranks,
        )

    def to_us_dict(self) -> dict[str, int | float]:
        """The results-file form (key ``latency_us``): microseconds, 3 decimals.

        Three decimals of a microsecond is the nanosecond, so nothing measured
        is lost; ``count`` stays an integer.
        """
        values = {
            "min": self.min,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
            "mean": self.mean,
        }
        return {"count": self.count, **{k: round(v / 1000, 3) for k, v in values.items()}}
