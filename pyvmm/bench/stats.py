"""Order statistics for benchmark samples (pure functions, unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The *q*-quantile (0..1) of already sorted values, linearly interpolated
    between closest ranks (numpy's default, R type 7)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("quantile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def median(values: Sequence[float]) -> float:
    return quantile(sorted(values), 0.5)


@dataclass(frozen=True)
class Distribution:
    """Summary of one class's samples (ns)."""

    count: int
    median: float
    p99: float
    mean: float
    min: float
    max: float
    #: Median of each repetition: their spread shows how stable the figure is.
    rep_medians: tuple[float, ...] = ()

    @classmethod
    def of(cls, samples: Sequence[float], reps: int = 1) -> Distribution:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        per = len(samples) // reps if reps > 0 else len(samples)
        rep_medians: tuple[float, ...] = ()
        if reps > 1 and per > 0:
            rep_medians = tuple(median(samples[r * per : (r + 1) * per]) for r in range(reps))
        return cls(
            count=len(ordered),
            median=quantile(ordered, 0.5),
            p99=quantile(ordered, 0.99),
            mean=sum(ordered) / len(ordered),
            min=ordered[0],
            max=ordered[-1],
            rep_medians=rep_medians,
        )

    def to_dict(self) -> dict:
        d = {k: round(getattr(self, k), 1) for k in ("median", "p99", "mean", "min", "max")}
        d["count"] = self.count
        d["rep_medians"] = [round(m, 1) for m in self.rep_medians]
        return d
