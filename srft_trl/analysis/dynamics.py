"""Training dynamics from the trainer's logs (Fig. 4 and 6 of the paper): reward, length, entropy, w_SFT, w_RL.

The source is `trainer_state.json`, which the Trainer writes into every `checkpoint-N` folder
(and into the output folder with `trainer.save_state()`); its `log_history` holds one entry per
logging step with the metrics `SRFTTrainer` / `GRPOTrainer` logged. A run is given as that file,
a checkpoint folder, or a training output folder (the state with the highest `global_step` among
the folder's own and its checkpoints' is used); any JSON file with the entries under `history`
(or a bare list of them) works as well.

Panels are named metrics, each read from the first key a run has logged:

* `reward`: `srft/reward_rollout` (on-policy rollouts only), else TRL's `reward`. For SRFT runs
  TRL's `reward` also averages the demonstrations' rewards, so the rollout reward is the one
  comparable with RL runs (Fig. 6a);
* `length`: `completions/mean_length` (mean completion length in tokens; demonstrations included);
* `entropy`: `srft/entropy_rollout` (mean token entropy of the rollouts), else TRL's `entropy`;
* `w_sft`, `w_rl`: `srft/w_sft`, `srft/w_rl` (the entropy-aware weights of Eq. 8 and 12; `w_rl`
  is only logged at steps with positive rollouts).

Any other logged key can be plotted by its name (e.g. `srft/entropy_demo`, `loss`); `key:NAME`
forces the raw key NAME even when NAME is also a panel name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import checkpoint_dirs, checkpoint_step
from .files import atomic_write_json, unique_labels

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_KEYS",
    "DynamicsResult",
    "dynamics",
    "find_trainer_state",
    "load_log_history",
    "metric_curve",
]

METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "reward": ("srft/reward_rollout", "reward"),
    "length": ("completions/mean_length",),
    "entropy": ("srft/entropy_rollout", "entropy"),
    "w_sft": ("srft/w_sft",),
    "w_rl": ("srft/w_rl",),
}
TITLES = {
    "reward": ("Training reward", "reward"),
    "length": ("Response length", "tokens"),
    "entropy": ("Entropy", "nats / token"),
    "w_sft": ("w_SFT", "weight"),
    "w_rl": ("w_RL", "weight"),
}
DEFAULT_METRICS = ("reward", "length", "entropy", "w_sft", "w_rl")


def _global_step(path: Path) -> int:
    try:
        return int(json.loads(path.read_text()).get("global_step", -1))
    except (OSError, ValueError, AttributeError):
        return -1


def find_trainer_state(run: str | os.PathLike) -> Path:
    """The `trainer_state.json` that stands for a run (file, checkpoint folder, or output folder)."""
    path = Path(run)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    candidates = [path / "trainer_state.json"]
    candidates += [p / "trainer_state.json" for p in checkpoint_dirs(path)]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise FileNotFoundError(f"{path}: no trainer_state.json here or in its checkpoint-N folders")
    return max(found, key=_global_step)


def load_log_history(run: str | os.PathLike) -> list[dict[str, Any]]:
    """The `log_history` entries of a run's trainer state.

    A JSON file that holds the entries under `"history"` instead (as the testbed's per-run
    result files do), or is itself a list of entries, is read the same way.
    """
    path = find_trainer_state(run)
    state = json.loads(path.read_text())
    history = state if isinstance(state, list) else state.get("log_history", state.get("history"))
    if not isinstance(history, list):
        raise ValueError(f"{path}: no log_history (or history) list of logged steps")
    return [entry for entry in history if isinstance(entry, dict)]


def metric_curve(history: Sequence[Mapping[str, Any]], metric: str) -> tuple[str | None, np.ndarray, np.ndarray]:
    """`(key used, steps, values)` of a metric in a log history; the key is None when nothing was logged.

    One value per step (the last logged at that step), in step order; non-finite values are dropped.
    """
    if metric.startswith("key:"):
        keys: tuple[str, ...] = (metric[4:],)
    else:
        keys = METRIC_KEYS.get(metric, (metric,))
    for key in keys:
        points: dict[int, float] = {}
        for entry in history:
            value, step = entry.get(key), entry.get("step")
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and step is not None
                and np.isfinite(value)
            ):
                points[int(step)] = float(value)
        if points:
            steps = np.array(sorted(points), dtype=np.int64)
            return key, steps, np.array([points[s] for s in steps], dtype=np.float64)
    return None, np.zeros(0, np.int64), np.zeros(0)


@dataclass
class DynamicsResult:
    """`curves[metric][run label] = (key, steps, values)` for every metric some run logged."""

    runs: list[dict[str, str]]
    metrics: list[str]
    curves: dict[str, dict[str, tuple[str, np.ndarray, np.ndarray]]]
    missing: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "analysis": "dynamics",
            "runs": self.runs,
            "metrics": {},
            "missing": self.missing,
            "files": self.files,
        }
        for metric, runs in self.curves.items():
            out["metrics"][metric] = {
                label: {
                    "key": key,
                    "steps": steps.tolist(),
                    "values": values.tolist(),
                    "first": float(values[0]),
                    "last": float(values[-1]),
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "mean": float(values.mean()),
                }
                for label, (key, steps, values) in runs.items()
            }
        return out


def _run_label(run: str | os.PathLike) -> str:
    path = Path(run)
    if path.is_file() and path.name != "trainer_state.json":
        return path.stem  # e.g. a result file `srft-seed0.json`
    if path.is_file():
        path = path.parent
    if checkpoint_step(path) is not None and path.parent.name:
        return path.parent.name
    return path.name or str(run)


def dynamics(
    runs: Sequence[str | os.PathLike],
    *,
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    smooth: int = 1,
    output_dir: str | os.PathLike | None = None,
    title: str = "Training dynamics",
) -> DynamicsResult:
    """Read the runs' logs and, with `output_dir`, write `dynamics.png` (all panels), `dynamics_<metric>.png`
    (one per panel) and `dynamics.json`. Panels no run logged are left out and listed in `missing`.
    `smooth > 1` draws a trailing moving average over that many logged steps (the JSON keeps raw values).
    """
    if not runs:
        raise ValueError("no runs given")
    labels = unique_labels(list(labels) if labels else [_run_label(r) for r in runs])
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    histories = {label: load_log_history(run) for label, run in zip(labels, runs)}
    curves: dict[str, dict[str, tuple[str, np.ndarray, np.ndarray]]] = {}
    missing: dict[str, list[str]] = {}
    for metric in metrics:
        for label, history in histories.items():
            key, steps, values = metric_curve(history, metric)
            if key is None:
                missing.setdefault(metric, []).append(label)
            else:
                curves.setdefault(metric, {})[label] = (key, steps, values)
    result = DynamicsResult(
        runs=[{"label": label, "state": str(find_trainer_state(run))} for label, run in zip(labels, runs)],
        metrics=list(metrics),
        curves=curves,
        missing=missing,
    )
    if output_dir is not None:
        write_dynamics(result, output_dir, smooth=smooth, title=title)
    return result


def _panel(metric: str, runs: Mapping[str, tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    name = metric[4:] if metric.startswith("key:") else metric
    title, ylabel = TITLES.get(name, (name, name))
    keys = sorted({key for key, _, _ in runs.values()})
    return {
        "title": f"{title} ({', '.join(keys)})" if name in TITLES else title,
        "ylabel": ylabel,
        "curves": {label: (steps, values) for label, (_, steps, values) in runs.items()},
    }


def write_dynamics(
    result: DynamicsResult, output_dir: str | os.PathLike, *, smooth: int = 1, title: str = "Training dynamics"
) -> dict[str, str]:
    from .files import slugify
    from .plots import plot_dynamics

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    panels = [_panel(metric, runs) for metric, runs in result.curves.items()]
    plot_dynamics(panels, out / "dynamics.png", smooth=smooth, title=title)
    result.files["all"] = "dynamics.png"
    for metric, panel in zip(result.curves, panels):
        name = f"dynamics_{slugify(metric)}.png"
        plot_dynamics([panel], out / name, smooth=smooth, title=title)
        result.files[metric] = name
    atomic_write_json(out / "dynamics.json", result.summary())
    return result.files
