"""Tables (Markdown, shaped like the paper's Tables 2 and 3) and Figure-6-like plots."""

from __future__ import annotations

import math
import statistics

from .methods import ABLATION_ROWS, GRANULARITY_ROWS, MAIN_ROWS, METHODS

PAPER = {  # Table 2 / Table 3 averages (Qwen2.5-Math-7B): in-distribution, OOD
    "base": (23.5, 15.4), "sft": (54.3, 49.2), "grpo": (49.3, 49.7), "sft_grpo": (54.5, 54.6),
    "luffy": (55.5, 57.8), "srft": (59.1, 62.5), "srft_no_wsft": (55.1, None), "srft_no_wrl": (56.2, None),
}


def _stats(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def summarize(results: dict) -> dict:
    """Per-method mean / std / per-seed accuracies (in percent)."""
    summary = {}
    for name, runs in results["runs"].items():
        test = [100 * r["test_accuracy"] for r in runs]
        ood = [100 * r["ood_accuracy"] for r in runs]
        summary[name] = {
            "test_mean": _stats(test)[0], "test_std": _stats(test)[1],
            "ood_mean": _stats(ood)[0], "ood_std": _stats(ood)[1],
            "test": test, "ood": ood, "seeds": [r["seed"] for r in runs],
            "first_entropy": _mean_or_none([_first(r, "entropy") for r in runs]),
            "final_entropy": _mean_or_none([_final(r, "entropy") for r in runs]),
            "final_reward": _mean_or_none([_final(r, "reward") for r in runs]),
            "final_length": _mean_or_none([_final(r, "length") for r in runs]),
        }
    return summary


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _num(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt(mean: float, std: float) -> str:
    return "—" if math.isnan(mean) else f"{mean:.1f} ± {std:.1f}"


def _paper(name: str, i: int) -> str:
    value = PAPER.get(name, (None, None))[i]
    return "—" if value is None else f"{value:.1f}"


def markdown_tables(results: dict, summary: dict) -> str:
    base = results.get("base", {})
    n_seeds = max((len(s["test"]) for s in summary.values()), default=0)
    lines = [
        f"Accuracy (%) with greedy decoding, mean ± std over {n_seeds} seed(s); test = in-distribution "
        f"('basic', {results['eval_sizes'].get('test', '?')} problems), OOD = 'hard' family "
        f"({results['eval_sizes'].get('ood', '?')} problems). Paper columns: Table 2/3 averages "
        "(Qwen2.5-Math-7B), for the shape of the comparison only.",
        "",
        "### Table 2 (shape): methods at equal step budget",
        "",
        "| Model | In-distribution | OOD | paper ID avg | paper OOD avg |",
        "|---|---|---|---|---|",
    ]
    if base:
        lines.append(f"| Base (pre-trained in-study) | {100 * base['test_accuracy']:.1f} | "
                     f"{100 * base['ood_accuracy']:.1f} | {_paper('base', 0)} | {_paper('base', 1)} |")
    for name in MAIN_ROWS:
        if name in summary:
            s = summary[name]
            lines.append(f"| {METHODS[name].label} | {_fmt(s['test_mean'], s['test_std'])} | "
                         f"{_fmt(s['ood_mean'], s['ood_std'])} | {_paper(name, 0)} | {_paper(name, 1)} |")
    lines += ["", "### Table 3 (shape): ablation of the entropy-aware weights", "",
              "| Model | In-distribution | OOD | paper ID avg |", "|---|---|---|---|"]
    for name in ABLATION_ROWS:
        if name in summary:
            s = summary[name]
            lines.append(f"| {METHODS[name].label} | {_fmt(s['test_mean'], s['test_std'])} | "
                         f"{_fmt(s['ood_mean'], s['ood_std'])} | {_paper(name, 0)} |")
    lines += ["", "### Entropy granularity of w_SFT / w_RL (not in the paper)", "",
              "| Model | In-distribution | OOD | rollout entropy first → last step |", "|---|---|---|---|"]
    for name in GRANULARITY_ROWS:
        if name in summary:
            s = summary[name]
            label = METHODS[name].label + (" (H per sequence, default)" if name == "srft" else "")
            lines.append(f"| {label} | {_fmt(s['test_mean'], s['test_std'])} | {_fmt(s['ood_mean'], s['ood_std'])} "
                         f"| {_num(s['first_entropy'])} → {_num(s['final_entropy'])} |")
    others = [n for n in summary if n not in set(MAIN_ROWS) | set(ABLATION_ROWS) | set(GRANULARITY_ROWS)]
    others = [n for n in others if n != "control"] + (["control"] if "control" in summary else [])
    if others:
        lines += ["", "### Other runs", "", "| Model | In-distribution | OOD |", "|---|---|---|"]
        for name in others:
            s = summary[name]
            lines.append(f"| {METHODS[name].label} | {_fmt(s['test_mean'], s['test_std'])} | "
                         f"{_fmt(s['ood_mean'], s['ood_std'])} |")
    lines += ["", "### Training dynamics in numbers (cf. Fig. 6): mean of the first / last 5 RL steps, over seeds", "",
              "Every method sees the same prompts in the same order for a given seed, so the control row (learning "
              "rate 0: the base model's own rollouts) is the no-learning reference for the reward column.", "",
              "| Method | rollout reward | response length | rollout entropy (nats) |", "|---|---|---|---|"]
    for name, runs in results["runs"].items():
        if METHODS[name].kind == "sft":
            continue
        cells = []
        for curve, digits in (("reward", 3), ("length", 1), ("entropy", 3)):
            first = _mean_or_none([_first(r, curve) for r in runs])
            last = _mean_or_none([_final(r, curve) for r in runs])
            cells.append(f"{_num(first, digits)} → {_num(last, digits)}")
        lines.append(f"| {METHODS[name].label} | " + " | ".join(cells) + " |")
    lines += ["", "### Per-seed accuracies (test / OOD, %)", "", "| Method | seeds | test | OOD |", "|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {METHODS[name].label} | {s['seeds']} | {', '.join(f'{v:.0f}' for v in s['test'])} | "
                     f"{', '.join(f'{v:.0f}' for v in s['ood'])} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ curves

CURVE_KEYS = {
    # on-policy rows only where the trainer logs them (demonstration methods), else TRL's metric
    "reward": ("srft/reward_rollout", "reward"),
    "length": ("completions/mean_length",),
    "entropy": ("srft/entropy_rollout", "entropy"),
    "w_rl": ("srft/w_rl",),
    "w_sft": ("srft/w_sft",),
}


def _value(entry: dict, keys) -> float | None:
    for key in keys:
        if key in entry and entry[key] is not None and not (isinstance(entry[key], float) and math.isnan(entry[key])):
            return float(entry[key])
    return None


def _rl_entries(run: dict) -> list[dict]:
    return [e for e in run.get("history", []) if e.get("stage", "rl") == "rl" and "reward" in e]


def _final(run: dict, curve: str, window: int = 5):
    values = [v for v in (_value(e, CURVE_KEYS[curve]) for e in _rl_entries(run)) if v is not None]
    return statistics.fmean(values[-window:]) if values else None


def _first(run: dict, curve: str, window: int = 5):
    values = [v for v in (_value(e, CURVE_KEYS[curve]) for e in _rl_entries(run)) if v is not None]
    return statistics.fmean(values[:window]) if values else None


SMOOTH = 8


def mean_curve(runs: list[dict], curve: str, smooth: int = SMOOTH) -> tuple[list[int], list[float]]:
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for entry in _rl_entries(run):
            value = _value(entry, CURVE_KEYS[curve])
            if value is not None:
                by_step.setdefault(int(entry["step"]), []).append(value)
    steps = sorted(by_step)
    values = [statistics.fmean(by_step[s]) for s in steps]
    if smooth > 1 and values:
        values = [statistics.fmean(values[max(0, i - smooth + 1) : i + 1]) for i in range(len(values))]
    return steps, values


def plot_figures(results: dict, out_dir) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups = {
        "fig6_training_dynamics.png": ("Training dynamics (cf. paper Fig. 6)", MAIN_ROWS, ["reward", "length", "entropy"]),
        "fig6_ablations.png": ("SRFT ablations and entropy granularity",
                               ["srft", "srft_no_wsft", "srft_no_wrl", "srft_token", "srft_batch", "grpo"],
                               ["reward", "length", "entropy", "w_sft", "w_rl"]),
    }
    titles = {"reward": "(a) training reward (rollouts)", "length": "(b) response length (tokens)",
              "entropy": "(c) rollout entropy (nats)", "w_sft": "mean w_SFT", "w_rl": "mean w_RL (rollout tokens)"}
    for filename, (title, names, panels) in groups.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
        for ax, curve in zip(axes, panels):
            for name in names + ["control"]:
                runs = results["runs"].get(name)
                if not runs or METHODS[name].kind == "sft" or (name == "control" and curve.startswith("w_")):
                    continue
                steps, values = mean_curve(runs, curve)
                if steps:
                    style = dict(color="0.5", linestyle="--") if name == "control" else {}
                    ax.plot(steps, values, label=METHODS[name].label, **style)
            ax.set_title(titles[curve])
            ax.set_xlabel("optimizer step")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(title + f" — mean over seeds, trailing {SMOOTH}-step moving average", fontsize=10)
        fig.tight_layout()
        path = out_dir / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written
