"""Tables (paper's Tables 2 and 3 shapes), paired comparisons with t intervals over the training runs (stats.py),
per-base results next to the pooled ones, curves and JSON for the testbed. Every accuracy is recomputed from the
per-problem outcomes stored in each run (`stats.run_accuracy`)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .methods import ABLATION_ROWS, MAIN_ROWS, METHODS
from .stats import against_base, compare, format_interval, run_accuracy, unit

FAMILIES = {"id": "ID", "zero": "~0% family", "ood": "OOD"}
RL_CURVES = [  # (metric for demonstration methods, metric for GRPO, title)
    ("srft/reward_rollout", "reward", "(a) rollout reward"),
    ("completions/mean_length", "completions/mean_length", "(b) response length (tokens; TRL's, demos included)"),
    ("srft/entropy_rollout", "entropy", "(c) rollout entropy (nats)"),
]
TERM_METRICS = ["srft/w_sft", "srft/w_rl", "srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout",
                "srft/grad_sft", "srft/grad_demo_rl", "srft/grad_rollout"]
PARAM_METRICS = ["srft/param_grad_sft", "srft/param_grad_demo_rl", "srft/param_grad_rollout", "srft/param_grad_total",
                 "grad_norm"]
COSINE_METRICS = ["srft/param_cos_sft_vs_demo_rl", "srft/param_cos_sft_vs_rollout", "srft/param_cos_demo_rl_vs_rollout",
                  "srft/param_cos_sft_vs_total", "srft/param_cos_demo_rl_vs_total", "srft/param_cos_rollout_vs_total"]
# Eq. 12's halves (`rollout_success`: w_RL-weighted likelihood on correct rollouts; `rollout_failure`: unlikelihood on
# incorrect ones), logged since issue 21 by `log_term_param_grad_norms`.
EQ12_METRICS = ["srft/param_grad_rollout_success", "srft/param_grad_rollout_failure",
                "srft/param_cos_rollout_success_vs_total", "srft/param_cos_rollout_failure_vs_total",
                "srft/param_cos_rollout_failure_vs_sft", "srft/param_cos_rollout_failure_vs_demo_rl"]
# (A, B) pairs reported, when both ran: SRFT against every row, then what each source adds.
PAIRS = ([("srft", b) for b in ("sft", "grpo", "grpo_sft", "sft_grpo", "luffy", "srft_hpt", "srft_grpo_rollouts",
                                "srft_imitation", "srft_no_wsft", "srft_no_wrl", "srft_no_sft", "luffy_srft_rate")]
         + [("srft_hpt", b) for b in ("sft", "grpo", "grpo_sft", "luffy", "srft_imitation")]
         + [("grpo_sft", "sft"), ("grpo_sft", "grpo"), ("sft", "grpo"), ("sft_grpo", "grpo"), ("sft_grpo", "sft"),
            ("luffy", "grpo"), ("srft_imitation", "sft"), ("srft_grpo_rollouts", "srft_imitation"),
            ("srft_no_sft", "grpo"), ("luffy_srft_rate", "grpo"), ("srft_sft_rate", "sft")])


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def bases(results: dict) -> dict[int, dict]:
    """Base results by base seed (a v2 `results.json` has one `base`, seed 0)."""
    if results.get("bases"):
        return {int(b): r for b, r in results["bases"].items()}
    return {0: results["base"]} if results.get("base") else {}


def summarize(results: dict) -> dict:
    """Per method and family: mean and std over the runs (units), their count, and the mean per base."""
    summary = {}
    for method, runs in results["runs"].items():
        summary[method] = {}
        for fam in FAMILIES:
            values = [run_accuracy(r, fam) for r in runs]
            mean, std = _mean_std(values)
            by_base: dict[int, list[float]] = {}
            for r in runs:
                by_base.setdefault(unit(r)[0], []).append(run_accuracy(r, fam))
            summary[method][fam] = {"mean": mean, "std": std, "n_units": len(values), "per_unit": values,
                                    "per_base": {b: sum(v) / len(v) for b, v in sorted(by_base.items())}}
    return summary


def comparisons(results: dict) -> list[dict]:
    """Every reported pair: per family the pooled paired t interval, and one per base when there are several."""
    runs, out = results["runs"], []
    base_seeds = sorted({unit(r)[0] for rs in runs.values() for r in rs})
    seen = set()
    for a, b in PAIRS:
        if a not in runs or b not in runs or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        row = {"a": a, "b": b, "pooled": {f: compare(runs[a], runs[b], f) for f in FAMILIES}}
        if len(base_seeds) > 1:
            row["per_base"] = {s: {f: compare(runs[a], runs[b], f, base_seed=s) for f in FAMILIES} for s in base_seeds}
        out.append(row)
    return out


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _row(results, summary, method) -> str:
    cells = [_pct(summary[method][f]["mean"], summary[method][f]["std"]) for f in FAMILIES]
    lrs = ", ".join(f"{v:g}" for v in results["runs"][method][0]["learning_rates"].values())
    return f"| {METHODS[method].label} | " + " | ".join(cells) + f" | {lrs} | {summary[method]['id']['n_units']} |"


def markdown(results: dict, summary: dict) -> str:
    s = results["settings"]
    base_results = bases(results)
    names = ["-".join(map(str, s[k])) for k in ("id_terms", "zero_terms", "ood_terms")]
    header = ("| method | ID (%s terms) | ~0%% family (%s terms) | OOD (%s terms) | lr | units |\n|---|---|---|---|---|---|\n"
              % tuple(names))
    base_rows = "".join(f"| Base (seed {b}) | " + " | ".join(_pct(run_accuracy(r, f)) for f in FAMILIES) + " | — | — |\n"
                        for b, r in sorted(base_results.items()))
    decoding = (f"one sample per problem at temperature {s['eval_temperature']:g} (the paper's pass@1)"
                if s.get("eval_temperature") else "greedy decoding")
    out = [f"Regime `{s.get('regime', 'default')}`. Test accuracy (%), {decoding}, {s['test_size']} problems per family; "
           f"mean ± std over the units (a unit: one base × one training seed; every method runs on the same units). "
           f"Budget for every method: {s['steps']} optimiser steps × {s['prompts_per_step']} problems (no problem "
           f"repeats), groups of {s['num_generations']}.\n\n"]
    out.append("### Table 2 shape: SRFT vs its baselines\n\n" + header + base_rows)
    out += [_row(results, summary, m) + "\n" for m in MAIN_ROWS if m in summary]
    out.append("\n### Table 3 shape: ablations of the entropy-aware weights\n\n" + header)
    out += [_row(results, summary, m) + "\n" for m in ABLATION_ROWS if m in summary]
    extra = [m for m in summary if METHODS[m].table in ("investigation", "capacity", "stage")]
    if extra:
        out.append("\n### Investigation, stage and capacity rows (not part of the equal-budget comparison)\n\n" + header)
        out += [_row(results, summary, m) + "\n" for m in extra]
    base_seeds = sorted({b for m in summary for b in summary[m]["id"]["per_base"]})
    if len(base_seeds) > 1:
        out.append("\n### Per base (mean over that base's seeds; ID / ~0% / OOD)\n\n| method | "
                   + " | ".join(f"base {b}" for b in base_seeds) + " |\n|---|" + "---|" * len(base_seeds) + "\n")
        for m in summary:
            cells = [" / ".join(_pct(summary[m][f]["per_base"][b]) if b in summary[m][f]["per_base"] else "—"
                                for f in FAMILIES) for b in base_seeds]
            out.append(f"| {METHODS[m].label} | " + " | ".join(cells) + " |\n")
    rows = comparisons(results)
    results["comparisons"] = rows
    out.append("\n### Paired comparisons (the training run is the unit)\n\nDifference A − B in points: mean over the "
               "paired units, [95% t interval], (n units). An interval that contains 0 is **not resolved**: the data "
               "do not say which is better. Units pair the same base, training problems and sampling seed.\n\n"
               "| A | B | " + " | ".join(FAMILIES.values()) + " |\n|---|---|---|---|---|\n")
    for row in rows:
        out.append(f"| {METHODS[row['a']].label} | {METHODS[row['b']].label} | "
                   + " | ".join(format_interval(row["pooled"][f]) for f in FAMILIES) + " |\n")
    if len(base_seeds) > 1 and rows:
        out.append("\n### Paired comparisons per base (ID)\n\n| A | B | "
                   + " | ".join(f"base {b}" for b in base_seeds) + " |\n|---|---|" + "---|" * len(base_seeds) + "\n")
        for row in rows:
            out.append(f"| {METHODS[row['a']].label} | {METHODS[row['b']].label} | "
                       + " | ".join(format_interval(row["per_base"][b]["id"]) for b in base_seeds) + " |\n")
    if base_results:
        out.append("\n### Against the base each run started from (paired over units)\n\n| method | "
                   + " | ".join(FAMILIES.values()) + " |\n|---|---|---|---|\n")
        for m, runs in results["runs"].items():
            out.append(f"| {METHODS[m].label} | "
                       + " | ".join(format_interval(against_base(runs, base_results, f)) for f in FAMILIES) + " |\n")
    out.append(_sweep_table(results))
    out.append(_sft_curve_table(results))
    out.append(_terms_table(results))
    out.append(_dynamics_table(results))
    return "".join(out)


def _sweep_table(results: dict) -> str:
    if not results.get("sweep"):
        return ""
    grid = sorted({float(lr) for by_lr in results["sweep"].values() for lr in by_lr})
    if not grid:
        return ""
    lines = ["\n### Learning-rate sweep (seed 0, validation split only: mean of ID and ~0% family, %)\n\n",
             "Starting grid: " + ", ".join(f"{lr:g}" for lr in results["settings"]["sweep_lrs"]) + "; a best rate at "
             "an edge adds the next rate beyond it (other columns). SFT → RL's row is its RL stage, swept from its "
             "SFT stage's chosen rate (the `SFT, first half` row).\n\n",
             "| method | " + " | ".join(f"lr {lr:g}" for lr in grid) + " | chosen |\n",
             "|---|" + "---|" * (len(grid) + 1) + "\n"]
    for m, by_lr in results["sweep"].items():
        cells = []
        for lr in grid:
            v = by_lr.get(f"{lr:g}")
            cells.append("—" if v is None else f"{100 * sum(v.values()) / len(v):.1f} (ID {100 * v['id']:.0f}, "
                         f"~0% {100 * v['zero']:.0f})")
        chosen = results["learning_rates"].get(m)
        status = results.get("sweep_status", {}).get(m)
        lines.append(f"| {METHODS[m].label} | " + " | ".join(cells)
                     + (f" | {chosen:g}" if chosen else " | —") + (f" ({status})" if status else "") + " |\n")
    fixed = results.get("fixed_by_command")
    if fixed:
        lines.append(f"\nRates fixed by the command (`--lr`): {', '.join(fixed)}.\n")
    return "".join(lines)


def _sft_curve_table(results: dict) -> str:
    rows = []
    for m in ("sft_long", "sft"):
        for run in results["runs"].get(m, []):
            if run["sft_curve"]:
                rows.append((m, run, run["sft_curve"]))
    if not rows:
        return ""
    out = ["\n### SFT learning curve (validation accuracy %, ID / ~0% family, by optimiser step)\n\n"]
    for m, run, curve in rows:
        out.append(f"* {METHODS[m].label}, base {unit(run)[0]}, seed {run['seed']}: " + ", ".join(
            f"{p['step']}: {100 * p['val_id']:.0f} / {100 * p['val_zero']:.0f}" for p in curve) + "\n")
    return "".join(out)


def _window_mean(history, key, first: bool | None, width: int = 10):
    """Mean of `key` over the first (`first=True`) or last `width` logged steps, or over all of them (`None`)."""
    values = [h[key] for h in history if key in h]
    if not values:
        return None
    part = values if first is None else values[:width] if first else values[-width:]
    return sum(part) / len(part)


def _terms_table(results: dict) -> str:
    methods = [m for m in ("srft", "srft_hpt", "srft_no_wsft", "srft_no_wrl", "srft_grpo_rollouts", "srft_no_sft",
                           "luffy") if m in results["runs"]]
    if not methods:
        return ""
    out = ["\n### SRFT terms over training (mean over seeds; first 10 → last 10 steps)\n\n`grad_*`: norms with "
           "respect to the token log-probabilities (they understate the SFT term; the parameter-space sizes are in the "
           "next table where measured).\n\n| method | "
           + " | ".join(k.removeprefix("srft/") for k in TERM_METRICS) + " |\n|---|" + "---|" * len(TERM_METRICS) + "\n"]
    out += _term_rows(results, methods, TERM_METRICS)
    measured = [m for m in results["runs"] if any(PARAM_METRICS[0] in h for r in results["runs"][m] for h in r["history"])]
    if measured:
        out.append("\n### SRFT terms in parameter space (exact per-term gradient norms, `log_term_param_grad_norms`; "
                   "`grad_norm` is the whole pre-clip gradient TRL logs; first 10 → last 10 steps (mean over the whole "
                   "run))\n\n| method | " + " | ".join(k.removeprefix("srft/") for k in PARAM_METRICS) + " |\n|---|"
                   + "---|" * len(PARAM_METRICS) + "\n")
        out += _term_rows(results, measured, PARAM_METRICS, whole=True)
        cosines = [m for m in measured if any(COSINE_METRICS[-1] in h for r in results["runs"][m] for h in r["history"])]
        if cosines:
            out.append("\n### Cosines between the terms' parameter gradients (and with the whole gradient), first 10 → "
                       "last 10 steps (mean over the whole run)\n\n| method | "
                       + " | ".join(k.removeprefix("srft/param_cos_") for k in COSINE_METRICS)
                       + " |\n|---|" + "---|" * len(COSINE_METRICS) + "\n")
            out += _term_rows(results, cosines, COSINE_METRICS, whole=True)
        halves = [m for m in measured if any(EQ12_METRICS[0] in h for r in results["runs"][m] for h in r["history"])]
        if halves:
            out.append("\n### Eq. 12's two halves in parameter space: `rollout_success` (w_RL × likelihood of correct "
                       "rollouts), `rollout_failure` (unlikelihood of incorrect ones); first 10 → last 10 steps (mean "
                       "over the whole run)\n\n| method | "
                       + " | ".join(k.removeprefix("srft/") for k in EQ12_METRICS)
                       + " |\n|---|" + "---|" * len(EQ12_METRICS) + "\n")
            out += _term_rows(results, halves, EQ12_METRICS, whole=True)
    return "".join(out)


def _term_rows(results: dict, methods: list[str], keys: list[str], whole: bool = False) -> list[str]:
    out = []
    for m in methods:
        cells = []
        for key in keys:
            windows = [[v for r in results["runs"][m] if (v := _window_mean(r["history"], key, first)) is not None]
                       for first in (True, False, None)]
            if not windows[0]:
                cells.append("—")
                continue
            firsts, lasts, alls = (sum(w) / len(w) for w in windows)
            cells.append(f"{firsts:.3g} → {lasts:.3g}" + (f" ({alls:.3g})" if whole else ""))
        out.append(f"| {METHODS[m].label} | " + " | ".join(cells) + " |\n")
    return out


def _dynamics_table(results: dict) -> str:
    out = ["\n### Training dynamics (Fig. 6 in numbers; mean over seeds, first 10 → last 10 steps)\n\n"
           "| method | rollout reward | response length | rollout entropy |\n|---|---|---|---|\n"]
    for m, runs in results["runs"].items():
        if METHODS[m].kind == "sft":
            continue
        cells = []
        for demo_key, grpo_key, _ in RL_CURVES:
            key = grpo_key if METHODS[m].preset == "grpo" else demo_key
            hist = [[h for h in r["history"] if h.get("stage") != "sft"] for r in runs]
            f = [v for h in hist if (v := _window_mean(h, key, True)) is not None]
            last = [v for h in hist if (v := _window_mean(h, key, False)) is not None]
            cells.append(f"{sum(f) / len(f):.3g} → {sum(last) / len(last):.3g}" if f else "—")
        out.append(f"| {METHODS[m].label} | " + " | ".join(cells) + " |\n")
    return "".join(out)


def _mean_curve(runs, key):
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for h in r["history"]:
            if key in h and h.get("stage") != "sft":
                by_step.setdefault(h["step"], []).append(h[key])
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def _smooth(values, width=5):
    return [sum(values[max(0, i - width + 1): i + 1]) / len(values[max(0, i - width + 1): i + 1])
            for i in range(len(values))]


def plot(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rl = [m for m in results["runs"] if METHODS[m].kind != "sft"]
    if rl:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for m in rl:
            for ax, (demo_key, grpo_key, title) in zip(axes, RL_CURVES):
                steps, values = _mean_curve(results["runs"][m], grpo_key if METHODS[m].preset == "grpo" else demo_key)
                if steps:
                    ax.plot(steps, _smooth(values), label=METHODS[m].label)
                ax.set_title(title)
                ax.set_xlabel("step")
        axes[0].legend(fontsize=7)
        fig.suptitle("Training dynamics (Fig. 6 shape), mean over seeds, 5-step moving average; (a), (c): on-policy rows only")
        fig.tight_layout()
        written.append(out / "fig6_training_dynamics.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    srft = [m for m in results["runs"] if METHODS[m].preset and METHODS[m].preset.startswith("srft")]
    if srft:
        fig, axes = plt.subplots(2, 4, figsize=(18, 7))
        for m in srft:
            for ax, key in zip(axes.flat, TERM_METRICS):
                steps, values = _mean_curve(results["runs"][m], key)
                if steps:
                    ax.plot(steps, _smooth(values), label=METHODS[m].label)
                ax.set_title(key)
                ax.set_xlabel("step")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("SRFT weights, per-term losses and per-term gradient norms (w.r.t. token log-probs), mean over seeds")
        fig.tight_layout()
        written.append(out / "srft_terms.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    measured = [r for m in results["runs"] for r in results["runs"][m] if any(EQ12_METRICS[0] in h for h in r["history"])]
    if measured:
        written.append(_gradient_plot(plt, measured, out / "srft_gradients.png"))
    curves = [(m, r) for m in ("sft_long", "sft") for r in results["runs"].get(m, []) if r["sft_curve"]]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for m, r in curves:
            steps = [p["step"] for p in r["sft_curve"]]
            for fam, style in (("val_id", "-"), ("val_zero", "--")):
                ax.plot(steps, [100 * p[fam] for p in r["sft_curve"]], style,
                        label=f"{METHODS[m].label} s{r['seed']} {FAMILIES[fam[4:]]}")
        ax.axvline(results["settings"]["steps"], color="grey", lw=0.8)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title("SFT learning curve (grey line: the comparison's budget)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        written.append(out / "sft_learning_curve.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def _gradient_plot(plt, runs: list[dict], path: Path) -> Path:
    """Per-step parameter-space gradient norms and cosines of the runs that logged them (one line per run)."""
    panels = [
        ("norms (pre-clip)", ["srft/param_grad_sft", "srft/param_grad_demo_rl", "srft/param_grad_rollout_success",
                              "srft/param_grad_rollout_failure", "srft/param_grad_total"]),
        ("cosine with the whole gradient", ["srft/param_cos_sft_vs_total", "srft/param_cos_demo_rl_vs_total",
                                            "srft/param_cos_rollout_success_vs_total",
                                            "srft/param_cos_rollout_failure_vs_total"]),
        ("cosines between terms", ["srft/param_cos_sft_vs_demo_rl", "srft/param_cos_rollout_failure_vs_sft",
                                   "srft/param_cos_rollout_failure_vs_demo_rl",
                                   "srft/param_cos_rollout_success_vs_sft"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    styles = ["-", "--", ":", "-."]
    for ax, (title, keys) in zip(axes, panels):
        for colour, key in enumerate(keys):
            for index, run in enumerate(runs):
                steps, values = _mean_curve([run], key)
                if steps:
                    ax.plot(steps, _smooth(values), styles[index % len(styles)], color=f"C{colour}",
                            label=key.removeprefix("srft/param_") if index == 0 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle("SRFT's terms in parameter space, 5-step moving average; line style: unit ("
                 + ", ".join(f"base {unit(r)[0]} seed {r['seed']}" for r in runs) + ")")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slim(results: dict) -> dict:
    """results.json without bulky per-step histories and per-problem outcomes (those stay in runs/*.json)."""
    def slim_eval(ev):
        return {split: {fam: {k: v for k, v in cell.items() if k != "outcomes"} for fam, cell in fams.items()}
                for split, fams in ev.items()}

    out = dict(results)
    out["runs"] = {m: [{**{k: v for k, v in r.items() if k != "history"}, "eval": slim_eval(r["eval"])} for r in runs]
                   for m, runs in results["runs"].items()}
    out["bases"] = {b: {**r, "eval": slim_eval(r["eval"])} for b, r in results.get("bases", {}).items()}
    return out


def write_report(results: dict, out: Path, wall_seconds: float | None, log=print) -> None:
    from .runs import atomic_write_json

    summary = summarize(results)
    results["summary"] = summary
    results["cpu_seconds_runs"] = sum(r.get("cpu_seconds", 0) for runs in results["runs"].values() for r in runs)
    invocations = []
    if (out / "results.json").exists():
        invocations = json.loads((out / "results.json").read_text()).get("invocations", [])
    if wall_seconds is not None:
        invocations.append({"command": results["command"], "wall_seconds": wall_seconds,
                            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    results["invocations"] = invocations
    plots = plot(results, out)
    md = ["# SRFT testbed: results\n\n", "Set-up and reading: `benchmarks/testbed/README.md`.\n\n",
          markdown(results, summary)]
    if results["failures"]:
        md.append("\n### Failed runs\n\n" + "".join(f"* {f}\n" for f in results["failures"]))
    md.append("\n### Invocations\n\n" + "".join(f"* `{i['command']}`: {i['wall_seconds'] / 60:.1f} min wall "
                                              f"(finished {i['finished']})\n" for i in invocations))
    md.append(f"\nCPU time of all run processes: {results['cpu_seconds_runs'] / 60:.1f} min. Plots: "
              + ", ".join(f"`{p.name}`" for p in plots) + ". Per-run JSON with per-step histories: `runs/`.\n")
    tmp = out / ".results.md.tmp"
    tmp.write_text("".join(md))
    tmp.replace(out / "results.md")
    atomic_write_json(out / "results.json", _slim(results))
    log(f"wrote {out / 'results.md'}")
