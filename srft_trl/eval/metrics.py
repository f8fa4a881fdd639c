"""Sample-based accuracy metrics: avg@k and the unbiased pass@k estimator (Chen et al., 2021)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["pass_at_k", "avg_at_k", "mean_pass_at_k", "default_ks", "mean"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from `n` samples of which `c` are correct: 1 - C(n-c, k) / C(n, k).

    Computed in product form, 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms the large
    binomials (so it is exact enough for n in the thousands and never overflows a float).
    """
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def avg_at_k(correct_counts: Iterable[int], k: int) -> float:
    """avg@k: the mean over problems of (correct samples / k), with k samples drawn per problem.

    It equals the unbiased pass@1 estimated from k samples.
    """
    counts = list(correct_counts)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if any(not (0 <= c <= k) for c in counts):
        raise ValueError(f"every correct count must lie in [0, {k}]")
    return mean(c / k for c in counts)


def mean_pass_at_k(n: int, correct_counts: Iterable[int], k: int) -> float:
    """pass@k over a benchmark: the mean of the per-problem unbiased estimates."""
    return mean(pass_at_k(n, c, k) for c in correct_counts)


def default_ks(n: int) -> list[int]:
    """The k reported by default for n samples: powers of two below n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    ks.append(n)
    return ks


def mean(values: Iterable[float] | Sequence[float]) -> float:
    """Arithmetic mean; NaN for an empty sequence (a benchmark with no items has no accuracy)."""
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
