"""What a finished run reports: held-out accuracy before and after with 95% intervals, and
`training.png` (accuracy and the SRFT weights over training).

The interval of one accuracy is Wilson's score interval; the gain's is the normal interval of a
difference of two independent proportions (the same problems are scored twice, so it is conservative).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

Z95 = 1.959963984540054


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's 95% score interval of an accuracy measured on `n` problems."""
    if n <= 0:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def gain_interval(before: float, after: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% normal interval of `after - before`, two accuracies on `n` problems each."""
    se = math.sqrt((before * (1 - before) + after * (1 - after)) / max(n, 1))
    gain = after - before
    return gain - z * se, gain + z * se


def accuracy_lines(before: float, after: float, n: int, source: str) -> list[str]:
    """The two lines a run prints at its end: both accuracies with intervals, then the gain and its verdict."""
    lo_b, hi_b = wilson_interval(before, n)
    lo_a, hi_a = wilson_interval(after, n)
    lo_g, hi_g = gain_interval(before, after, n)
    verdict = ("beyond its 95% interval" if lo_g > 0 or hi_g < 0 else "within its 95% interval: not distinguishable "
               "from noise on this many problems")
    return [
        f"held-out accuracy before: {before:.3f} / after: {after:.3f} ({n} problems of {source})",
        f"95% intervals: before [{lo_b:.3f}, {hi_b:.3f}], after [{lo_a:.3f}, {hi_a:.3f}]; "
        f"gain {after - before:+.3f} [{lo_g:+.3f}, {hi_g:+.3f}], {verdict}",
    ]


# Panels of training.png: (title, [(label, keys tried in order)]).
PANELS = (
    ("accuracy", [("reward of the rollouts (training problems)", ("srft/reward_rollout", "reward"))]),
    ("SRFT weights", [("w_SFT (Eq. 8)", ("srft/w_sft",)), ("w_RL (Eq. 12)", ("srft/w_rl",))]),
)


def plot_training(history: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, before: float | None = None,
                  after: float | None = None, n: int = 0, title: str = "") -> Path | None:
    """Write `path` (PNG): the rollouts' reward and the held-out accuracy before/after (with intervals)
    over training, and `w_SFT` / `w_RL`. None, writing nothing, when nothing plottable was logged."""
    from matplotlib.figure import Figure

    from .analysis.files import atomic_savefig

    curves = [[(label, _curve(history, keys)) for label, keys in series] for _, series in PANELS]
    if not any(len(c[1][1]) for panel in curves for c in panel) and before is None:
        return None
    last_step = max((int(e["step"]) for e in history if isinstance(e.get("step"), (int, float))), default=0)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (panel_title, _), panel in zip(axes, PANELS, curves):
        for label, (_, steps, values) in panel:
            if len(steps):
                ax.plot(steps, values, marker=".", label=label)
        ax.set_title(panel_title)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    if before is not None:
        points = [(0, before)] + ([(last_step, after)] if after is not None else [])
        lows, highs = zip(*(wilson_interval(v, n) for _, v in points))
        xs, ys = zip(*points)
        axes[0].errorbar(xs, ys, yerr=[[y - lo for y, lo in zip(ys, lows)], [hi - y for y, hi in zip(ys, highs)]],
                         fmt="o", color="black", capsize=4, label=f"held-out accuracy ({n} problems, 95% interval)")
    highest = max([0.0] + [float(v.max()) for _, (_, s, v) in curves[0] if len(s)] + [after or 0.0, before or 0.0])
    axes[0].set_ylim(0, min(1.0, highest + 0.2))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return atomic_savefig(fig, path, dpi=100)


def _curve(history, keys):
    """`(key, steps, values)` of the first of `keys` that was logged (`srft_trl.analysis.dynamics.metric_curve`)."""
    from .analysis.dynamics import metric_curve

    for key in keys:
        found = metric_curve(history, f"key:{key}")
        if found[0] is not None:
            return found
    return found
