"""Paired comparisons with the training run as the unit (issue 21): mean difference, 95% t interval, n units.

A unit is one training run of each method on the same (base, seed): the same base checkpoint, the same training
problems and the same sampling seed. The difference A − B is computed per unit (from the per-problem outcomes stored
with each run), and the interval is Student's t over the units, so it carries the run-to-run variance that a
binomial standard error of the test set leaves out. An interval that contains 0 is "not resolved".

The t quantile is computed here (no scipy dependency): the t CDF through the regularised incomplete beta function
(continued fraction, Lentz's method), inverted by bisection.
"""

from __future__ import annotations

import math


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom (0 < p < 1, df >= 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p must be in (0, 1), got {p}")
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def paired_interval(diffs: list[float], confidence: float = 0.95) -> dict:
    """Mean of the per-unit differences with its two-sided t interval.

    Returns `{"n", "mean", "sd", "half_width", "low", "high", "resolved"}`; `resolved` is False when the interval
    contains 0 (or when there are fewer than 2 units, where no interval exists: `half_width` is then None).
    """
    n = len(diffs)
    if n == 0:
        raise ValueError("paired_interval: no paired units")
    mean = sum(diffs) / n
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "half_width": None, "low": None, "high": None, "resolved": False}
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "half_width": half, "low": mean - half, "high": mean + half,
            "resolved": mean - half > 0 or mean + half < 0}


def run_accuracy(run: dict, family: str, split: str = "test") -> float:
    """A run's accuracy on a family, recomputed from its per-problem outcomes when it stored them."""
    cell = run["eval"][split][family]
    outcomes = cell.get("outcomes")
    if outcomes:
        return sum(outcomes.values()) / len(outcomes)
    return cell["accuracy"]


def unit(run: dict) -> tuple[int, int]:
    """The paired unit of a run: (base seed, training seed). Runs from before issue 21 have base seed 0."""
    return (run.get("base_seed", 0), run["seed"])


def paired_units(runs_a: list[dict], runs_b: list[dict], family: str) -> dict[tuple[int, int], float]:
    """Per-unit differences A − B of test accuracy on `family`, over the units both methods ran."""
    a = {unit(r): run_accuracy(r, family) for r in runs_a}
    b = {unit(r): run_accuracy(r, family) for r in runs_b}
    return {u: a[u] - b[u] for u in sorted(set(a) & set(b))}


def compare(runs_a: list[dict], runs_b: list[dict], family: str, base_seed: int | None = None) -> dict | None:
    """Paired comparison of two methods' runs on `family` (all bases pooled, or one `base_seed`); None if no unit."""
    diffs = paired_units(runs_a, runs_b, family)
    if base_seed is not None:
        diffs = {u: d for u, d in diffs.items() if u[0] == base_seed}
    if not diffs:
        return None
    return {**paired_interval(list(diffs.values())), "units": [list(u) for u in diffs], "diffs": list(diffs.values())}


def against_base(runs: list[dict], bases: dict[int, dict], family: str) -> dict | None:
    """Paired comparison of a method's runs with the base each started from (`bases`: base seed -> base result)."""
    diffs = [run_accuracy(r, family) - run_accuracy(bases[u[0]], family) for r in runs if (u := unit(r))[0] in bases]
    return paired_interval(diffs) if diffs else None


def format_interval(c: dict | None, scale: float = 100.0) -> str:
    """`+3.1 [+0.4, +5.8] (n 10)` in points, or `+3.1 [-1.2, +7.4] (n 10, not resolved)`."""
    if c is None:
        return "—"
    if c["half_width"] is None:
        return f"{scale * c['mean']:+.1f} (n {c['n']}, no interval)"
    text = f"{scale * c['mean']:+.1f} [{scale * c['low']:+.1f}, {scale * c['high']:+.1f}] (n {c['n']}"
    return text + (")" if c["resolved"] else ", not resolved)")
